//! Every config field Courier accepts must act as Envoy's does (DESIGN.md §2).
//! This file holds that promise to account: `EVIDENCE` names, for each supported
//! `(message, field)` of `courier::extensions::supported::all_supported_fields()`, the
//! tests that show the field acting — an integration test, a unit test, or a
//! compat case (`tests/compat/cases/<name>.yaml`, run through the real Envoy and
//! Courier and compared). A field that changes nothing must instead be on
//! `supported::NO_EFFECT`, with Envoy's reason. `KNOWN_GAPS` lists the fields for
//! which no test shows that yet, each with what is wrong; it is meant to empty
//! out (the code is fixed, or the field refused or moved to `NO_EFFECT`).
//!
//! `every_supported_field_has_evidence` fails when a field has neither evidence
//! nor a place on those lists, when an entry is stale (its field is no longer
//! supported, or a gap now has evidence), or when a named test does not exist or
//! does not mention the field (in its body, or for a compat case in the case file),
//! so that the table cannot quietly drift from the tests it cites.
//! The table follows the order of the supported tables (`SUPPORTED_FIELDS`,
//! `router::ROUTE_SUPPORTED_FIELDS`, the HTTP filters' table).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use courier::config::supported::NO_EFFECT;
use courier::extensions::supported::all_supported_fields;

/// Where a test shows a field acting.
#[derive(Debug, Clone, Copy)]
enum Evidence {
    /// `(file under the repository root, test function)`: an integration test
    /// (`tests/integration/*.rs`) or a unit test (`src/**/*.rs`).
    Test(&'static str, &'static str),
    /// A compat case, `tests/compat/cases/<name>.yaml`.
    Compat(&'static str),
}

use Evidence::Test as test;

const fn compat(case: &'static str) -> Evidence {
    Evidence::Compat(case)
}

const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";
const COMPRESSOR_RESPONSE: &str = "envoy.extensions.filters.http.compressor.v3.Compressor.ResponseDirectionConfig";
const COMPRESSOR_COMMON: &str = "envoy.extensions.filters.http.compressor.v3.Compressor.CommonDirectionConfig";
const COMPRESSOR_PER_ROUTE: &str = "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute";
const GZIP: &str = "envoy.extensions.compression.gzip.compressor.v3.Gzip";
const EXT_AUTHZ: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const EXT_AUTHZ_RESPONSE: &str = "envoy.extensions.filters.http.ext_authz.v3.AuthorizationResponse";
const CSRF: &str = "envoy.extensions.filters.http.csrf.v3.CsrfPolicy";
const SET_METADATA: &str = "envoy.extensions.filters.http.set_metadata.v3.Config";
const GRPC_BRIDGE: &str = "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config";
const GRPC_REVERSE_BRIDGE: &str = "envoy.extensions.filters.http.grpc_http1_reverse_bridge.v3.FilterConfig";
const GRPC_REVERSE_BRIDGE_PER_ROUTE: &str =
    "envoy.extensions.filters.http.grpc_http1_reverse_bridge.v3.FilterConfigPerRoute";
const SET_METADATA_ENTRY: &str = "envoy.extensions.filters.http.set_metadata.v3.Metadata";
const H2M: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config";
const H2M_RULE: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config.Rule";
const H2M_PAIR: &str = "envoy.extensions.filters.http.header_to_metadata.v3.Config.KeyValuePair";
const JWT_AUTHN: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const JWT_PROVIDER: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtProvider";
const JWT_REQUIREMENT: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement";
const JWT_REMOTE: &str = "jwt_authn_fetches_remote_jwks_once_and_answers_a_failed_fetch";
const DECOMPRESSOR: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor";
const DECOMPRESSOR_REQUEST: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor.RequestDirectionConfig";
const DECOMPRESSOR_RESPONSE: &str =
    "envoy.extensions.filters.http.decompressor.v3.Decompressor.ResponseDirectionConfig";
const DECOMPRESSOR_COMMON: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor.CommonDirectionConfig";
const DECOMPRESSOR_IT: &str = "decompressor_inflates_a_request_body_as_it_streams";
const GZIP_INFLATE: &str = "envoy.extensions.compression.gzip.decompressor.v3.Gzip";
const GZIP_INFLATE_RS: &str = "src/extensions/compression/gzip/decompressor.rs";
const GZIP_RS: &str = "src/extensions/compression/gzip/compressor.rs";
const BROTLI: &str = "envoy.extensions.compression.brotli.compressor.v3.Brotli";
const BROTLI_RS: &str = "src/extensions/compression/brotli/compressor.rs";
const BROTLI_INFLATE: &str = "envoy.extensions.compression.brotli.decompressor.v3.Brotli";
const BROTLI_INFLATE_RS: &str = "src/extensions/compression/brotli/decompressor.rs";
const ZSTD: &str = "envoy.extensions.compression.zstd.compressor.v3.Zstd";
const ZSTD_RS: &str = "src/extensions/compression/zstd/compressor.rs";
const ZSTD_INFLATE: &str = "envoy.extensions.compression.zstd.decompressor.v3.Zstd";
const ZSTD_INFLATE_RS: &str = "src/extensions/compression/zstd/decompressor.rs";
const BROTLI_ZSTD_COMPRESSOR: &str = "filter_compressor_brotli_zstd";
const BROTLI_ZSTD_DECOMPRESSOR: &str = "filter_decompressor_brotli_zstd";
const XDS_IT: &str = "tests/integration/xds_files.rs";
const ADS_IT: &str = "tests/integration/xds_grpc.rs";
const ADS_APPLY: &str = "ads_clusters_and_listeners_serve_and_updates_apply";
const ADS_CLUSTER: &str = "a_management_server_needs_a_static_http2_cluster";
const ADS_ENVOY: &str = "ads_requests_and_stats_match_envoys";
const ADS_OWN_STREAMS: &str = "cds_and_lds_on_streams_of_their_own";
const DELTA_IT: &str = "tests/integration/xds_delta.rs";
const DELTA_OWN_STREAMS: &str = "per_type_delta_streams_subscribe_and_unsubscribe";
const EDS_IT: &str = "tests/integration/eds.rs";
const LRS_IT: &str = "tests/integration/load_stats.rs";
const HC_IT: &str = "tests/integration/health_check.rs";
const HC_HTTP: &str = "http_checks_move_traffic_away_from_a_failing_host_and_back";
const HC_GRPC: &str = "grpc_checks_follow_the_serving_status";
const HC_CONFIG_RS: &str = "src/upstream/health_check/config.rs";
const HC_SESSION_RS: &str = "src/upstream/health_check/session.rs";
const HC_EVENTS: &str = "active_health_check_event_log";
const HC_EVENTS_UNIT: &str = "events_are_logged_on_envoys_transitions";
const HC_EVENTS_IT: &str = "event_log_follows_a_host_through_active_and_passive_failures";
const HEALTH_CHECKING: &str = "envoy.config.core.v3.HealthCheck";
const HTTP_HEALTH_CHECK: &str = "envoy.config.core.v3.HealthCheck.HttpHealthCheck";
const HC_CONFIG: &str = "envoy.config.endpoint.v3.Endpoint.HealthCheckConfig";
const EDS_FOLLOW: &str = "an_eds_cluster_serves_its_file_and_follows_each_new_assignment";
const SDS_IT: &str = "tests/integration/sds.rs";
const SDS_XDS_IT: &str = "tests/integration/xds_sds.rs";
const SDS_ADS: &str = "an_ads_secret_warms_the_listener_then_rotates_and_a_bad_one_is_nacked";
const SDS_OWN_STREAM: &str = "a_secret_on_a_stream_of_its_own_warms_rotates_and_is_nacked_as_envoys";
const RDS_IT: &str = "tests/integration/rds.rs";
const RDS_FILE: &str = "routes_from_an_rds_file_serve_and_a_moved_in_file_changes_them";
const SDS_STATIC: &str = "a_static_secret_serves_https_and_an_unknown_name_is_refused";
const SDS_STATIC_CA: &str = "a_static_validation_secret_checks_client_certificates";
const SDS_UPSTREAM: &str = "an_upstream_validation_context_from_sds_verifies_the_upstream";
const SDS_COMBINED: &str = "a_combined_validation_context_merges_the_default_with_the_secret";
const SDS_CONFIG: &str = "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig";
const SECRET_MSG: &str = "envoy.extensions.transport_sockets.tls.v3.Secret";
const COMBINED_VC: &str =
    "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext";
const XDS_REMOVE: &str = "a_removed_listener_stops_accepting_while_its_request_in_flight_completes";
const XDS_WATCHED: &str = "a_watched_directory_reloads_on_any_move_into_it";
const OVERLOAD: &str = "envoy.config.overload.v3.OverloadManager";
const SCALE_TIMERS: &str = "envoy.config.overload.v3.ScaleTimersOverloadActionConfig";
const SCALE_TIMER: &str = "envoy.config.overload.v3.ScaleTimersOverloadActionConfig.ScaleTimer";
const REDUCE_TIMEOUTS_IT: &str = "reduce_timeouts_shortens_an_idle_connection_armed_before_it_engaged";
const OVERLOAD_RS: &str = "src/server/overload_manager.rs";
const LISTENER: &str = "envoy.config.listener.v3.Listener";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const HTTP_OPTIONS: &str = "envoy.config.core.v3.HttpProtocolOptions";
const HCM: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const XFCC_RS: &str = "src/extensions/filters/network/http_connection_manager/client_cert.rs";
const XFCC_PEM: &str = "cert_and_chain_are_the_pem_url_encoded_as_envoy_prints_them";
const XFCC_DETAILS: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails";
const H2_OPTIONS: &str = "envoy.config.core.v3.Http2ProtocolOptions";
const H2_IT: &str = "tests/integration/http2_downstream.rs";
const H2_OUTBOUND_LIMITS: &str = "the_outbound_frame_limits_are_the_configured_ones";
const H2_STREAM_ERROR: &str = "a_malformed_request_closes_the_connection_unless_stream_errors_are_configured";
const H2_SETTINGS: &str = "http2_protocol_options_are_the_settings_the_client_sees";
const H2_KEEPALIVE: &str = "a_client_that_does_not_answer_keepalive_pings_is_closed";
const ROUTE_CONFIG: &str = "envoy.config.route.v3.RouteConfiguration";
const VHOST: &str = "envoy.config.route.v3.VirtualHost";
const ROUTE: &str = "envoy.config.route.v3.Route";
const ROUTE_MATCH: &str = "envoy.config.route.v3.RouteMatch";
const HEADER_MATCHER: &str = "envoy.config.route.v3.HeaderMatcher";
const HCM_RDS: &str = "envoy.extensions.filters.network.http_connection_manager.v3.Rds";
const HCM_UPGRADE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig";
const PROXY_IT: &str = "tests/integration/http_proxy.rs";
const WEBSOCKET_IT: &str = "websocket_upgrades_become_tunnels";
const H2_WEBSOCKET_IT: &str = "tests/integration/http2_websocket.rs";
const H2_WEBSOCKET: &str = "websocket_over_http2_is_relayed_to_an_http1_upgrade";
const MIRROR_POLICY: &str = "envoy.config.route.v3.RouteAction.RequestMirrorPolicy";
const MIRROR_IT: &str = "a_mirror_gets_a_copy_of_a_streamed_request";
const ROUTE_ACTION: &str = "envoy.config.route.v3.RouteAction";
const RETRY_POLICY: &str = "envoy.config.route.v3.RetryPolicy";
const REDIRECT: &str = "envoy.config.route.v3.RedirectAction";
const STRING_MATCHER: &str = "envoy.type.matcher.v3.StringMatcher";
const MATCH_TREE: &str = "src/matcher/match_tree.rs";
const LOCAL_RATELIMIT: &str = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";
const TLS_IT: &str = "tests/integration/tls.rs";
const RBAC_PERMISSION: &str = "envoy.config.rbac.v3.Permission";
const NETWORK_RBAC: &str = "envoy.extensions.filters.network.rbac.v3.RBAC";
const CONNECTION_LIMIT: &str = "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
const NETWORK_RATE_LIMIT: &str = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit";
const NETWORK_FILTERS_IT: &str = "tests/integration/network_filters.rs";
const CONNECTION_LIMIT_TEST: &str = "connection_limit_refuses_a_connection_over_the_limit";
const RBAC_PRINCIPAL: &str = "envoy.config.rbac.v3.Principal";
const RBAC_TLS: &str = "rbac_authenticated_principals_are_the_client_certificate_names";
const PP_RULE: &str = "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol.Rule";
const PP_PAIR: &str = "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol.KeyValuePair";
const UPSTREAM_PP: &str = "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport";
const UPSTREAM_PP_IT: &str = "upstream_proxy_protocol_gives_each_downstream_connection_its_own_upstream";
const PP_TLVS_IT: &str = "upstream_proxy_protocol_passes_the_kept_tlvs_of_http_requests";
const HCM_TRACING: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing";
const CUSTOM_TAG: &str = "envoy.type.tracing.v3.CustomTag";
const ZIPKIN: &str = "envoy.config.trace.v3.ZipkinConfig";
const TRACING_IT: &str = "tests/integration/tracing.rs";
const TRACING_UNIT: &str = "src/tracing/decision.rs";
const TRACING_SPANS: &str = "spans_reach_the_collector_in_envoys_shape_with_the_propagated_ids";
const OTEL_EXPORT: &str = "opentelemetry_spans_are_exported_over_grpc_with_w3c_context";
const TRACING_REFUSED: &str = "other_tracers_and_unimplemented_options_are_refused_by_name";
const SKYWALKING: &str = "envoy.config.trace.v3.SkyWalkingConfig";
const SKYWALKING_CLIENT: &str = "envoy.config.trace.v3.ClientConfig";
const SKYWALKING_IT: &str = "tests/integration/skywalking.rs";
const SKYWALKING_SEGMENTS: &str = "segments_and_sw8_as_envoys";
const SKYWALKING_REFUSED: &str = "unimplemented_options_are_refused_by_name";
const DATADOG: &str = "envoy.config.trace.v3.DatadogConfig";
const DATADOG_IT: &str = "tests/integration/tracing_datadog.rs";
const DATADOG_SPANS: &str = "datadog_spans_reach_the_agent_as_msgpack_with_both_contexts_propagated";
const DATADOG_REFUSED: &str = "datadog_options_courier_does_not_act_on_are_refused_by_name";
const TLS_HTTP1: &str = "https_terminates_http1_and_counts_the_handshake";
const TLS_PARAMS: &str = "tls_params_and_inline_certificates_choose_the_version";
const TLS_MTLS: &str = "mutual_tls_accepts_the_ca_s_clients_and_refuses_the_rest";
const TLS_RESUMPTION: &str = "session_resumption_follows_the_stateless_and_stateful_switches";
const TLS_PINS: &str = "pinned_certificates_are_accepted_by_hash_or_spki_and_others_refused";
const TLS_UPSTREAM: &str = "upstream_tls_sends_sni_and_validates_the_ca";
const TLS_UPSTREAM_RESUMPTION: &str = "upstream_sessions_resume_unless_max_session_keys_is_0";
const TLS_AUTO_SNI: &str = "auto_sni_and_auto_san_validation_name_each_connection_after_the_host";
const TLS_AUTO_CONFIG: &str = "auto_config_speaks_the_protocol_alpn_picked";
const TLS_TICKET_KEYS: &str = "session_ticket_keys_resume_a_session_on_another_process_with_the_same_keys";
const TICKETS_RS: &str = "src/extensions/transport_sockets/tls/tickets.rs";
const TICKETS_EXPIRE: &str = "the_first_key_seals_and_every_key_opens_until_the_session_timeout";
const TLS_TICKET_SECRETS: &str = "ticket_keys_from_a_static_or_sds_secret_open_another_process_s_tickets";
const TLS_OCSP: &str = "ocsp_staples_go_to_clients_that_ask_and_the_policy_rules_an_expired_one";
const TLS_CRL: &str = "crls_refuse_revoked_peers_and_peers_whose_issuer_has_no_crl";
const TLS_ERRORS: &str = "tls_config_courier_cannot_honour_is_refused_naming_the_field";
const DOWNSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const UPSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const COMMON_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.CommonTlsContext";
const TLS_PARAMS_MSG: &str = "envoy.extensions.transport_sockets.tls.v3.TlsParameters";
const ROUTE_CORS_POLICY: &str = "envoy.config.route.v3.CorsPolicy";
const CORS_POLICY: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";
const FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";
const FAULT_ABORT: &str = "envoy.extensions.filters.http.fault.v3.FaultAbort";
const FAULT_DELAY: &str = "envoy.extensions.filters.common.fault.v3.FaultDelay";
const HEALTH_CHECK: &str = "envoy.extensions.filters.http.health_check.v3.HealthCheck";

const SINKS_IT: &str = "tests/integration/stat_sinks.rs";
const SINKS: &str = "statsd_and_dog_statsd_sinks_send_counters_gauges_and_histograms";
const SINKS_RS: &str = "src/stats/sink.rs";
const OTEL_SINK_IT: &str = "tests/integration/otel_stat_sink.rs";
const OTEL_SINK: &str = "counters_gauges_and_histograms_are_exported_cumulatively_with_tags";
const OTEL_SINK_DELTAS: &str = "deltas_prefix_and_full_names_without_attributes";
const OTEL_SINK_ENV: &str = "the_environment_detector_reads_otel_resource_attributes";
const OTEL_SINK_CONFIG: &str = "envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig";
const MS_IT: &str = "tests/integration/metrics_service_sink.rs";
const MS_CONFIG: &str = "envoy.config.metrics.v3.MetricsServiceConfig";
const MS_LABELS: &str = "one_stream_identified_once_with_labelled_families";
const MS_DELTAS: &str = "deltas_full_names_and_histograms_only";
const MS_REFUSED: &str = "unsupported_metrics_service_fields_are_refused_by_name";
const RUNTIME_LAYER: &str = "envoy.config.bootstrap.v3.RuntimeLayer";
const DISK_LAYER: &str = "envoy.config.bootstrap.v3.RuntimeLayer.DiskLayer";

const RUNTIME_IT: &str = "tests/integration/runtime.rs";
const RTDS_IT: &str = "tests/integration/xds_rtds.rs";
const RTDS_ADS: &str = "rtds_over_ads_matches_envoy";
const RTDS_FILE: &str = "rtds_from_a_file_matches_envoy";
const RUNTIME_MODIFY: &str = "runtime_shows_layers_and_runtime_modify_changes_a_route_live";
const RUNTIME_DISK: &str = "disk_layer_is_read_and_reread_when_its_symlink_is_replaced";
const ACCESS_LOG_IT: &str = "tests/integration/access_log.rs";
const ADMIN_IT: &str = "tests/integration/admin.rs";
const CODEC_IT: &str = "tests/integration/http_codec.rs";
const PREVIOUS_HOSTS: &str = "previous_hosts_keeps_a_retry_off_the_host_that_failed";
const FILTERS_IT: &str = "tests/integration/http_filters.rs";
const OPTIONS_IT: &str = "tests/integration/http_options.rs";
const LIFECYCLE_IT: &str = "tests/integration/lifecycle.rs";
const LB_IT: &str = "tests/integration/load_balancing.rs";
const OD_IT: &str = "tests/integration/original_dst.rs";
const OD_HEADER: &str = "use_http_header_names_each_upstream_and_a_bad_header_is_a_503";
const OD_RESTORED: &str = "a_restored_destination_is_the_host_with_its_port_overridden_and_unused_hosts_leave";
const OD_UNIT: &str = "original_dst_destination_is_the_header_else_the_restored_address_with_the_port_overridden";
const OD_LB: &str = "envoy.config.cluster.v3.Cluster.OriginalDstLbConfig";
const ROUTING_IT: &str = "tests/integration/routing.rs";
const TCP_IT: &str = "tests/integration/tcp_proxy.rs";
const UPSTREAM_IT: &str = "tests/integration/upstream.rs";
const DNS_IT: &str = "tests/integration/dns.rs";
const DNS_FIRST: &str = "dns_resolvers_send_a_strict_dns_cluster_to_the_configured_nameserver";
const DNS_TTL: &str = "respect_dns_ttl_resolves_again_at_the_answers_ttl";
const DNS_HOSTILE: &str = "hostile_replies_fail_the_resolution_and_the_cluster_recovers";
const DNS_BOOTSTRAP: &str = "the_bootstraps_resolver_serves_clusters_without_their_own";
const DNS_SEARCH: &str = "search_domains_come_from_the_system_unless_refused";
const DNS_FALLBACK: &str = "resolver_fallback_and_unroutable_families";
const CARES: &str = "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";
const H2_UPSTREAM_IT: &str = "tests/integration/http2_upstream.rs";
const CLUSTER_RS: &str = "src/upstream/cluster.rs";
const ZONE_RS: &str = "src/upstream/zone_aware.rs";
const ZONE_SAMPLED: &str = "zone_aware_routing_samples_the_local_zone_by_its_capacity";
const COMMON_LB: &str = "common_lb_config_takes_the_panic_threshold_locality_weighting_and_zone_awareness_only";
const LB_REFUSES: &str = "load_balancing_policy_refuses_what_courier_cannot_honour";
const LEGACY_ZONE: &str = "envoy.config.cluster.v3.Cluster.CommonLbConfig.ZoneAwareLbConfig";
const ZONE: &str = "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.ZoneAwareLbConfig";
const LPATH_IT: &str = "tests/integration/listener_path.rs";
const CONFIG_ERRORS_IT: &str = "tests/integration/config_errors.rs";
const PP_CHAINS: &str = "proxy_protocol_addresses_choose_the_chain_by_destination_port_and_source_prefix";
const LF_TIMEOUT: &str = "listener_filters_timeout_closes_or_continues_as_configured";
const FCM: &str = "envoy.config.listener.v3.FilterChainMatch";
const FCM_RS: &str = "src/network/filter_chain_match.rs";
const FCM_TABLE: &str = "each_criterion_picks_its_most_specific_chain";

/// `(message, field, where tests show it acting)`, in the order of the tables.
const EVIDENCE: &[(&str, &str, &[Evidence])] = &[
    // --- config::supported::SUPPORTED_FIELDS
    (BOOTSTRAP, "node", &[compat("admin_pages")]),
    (BOOTSTRAP, "static_resources", &[compat("http_get")]),
    (BOOTSTRAP, "dynamic_resources", &[compat("xds_files"), test(XDS_IT, XDS_REMOVE), test(XDS_IT, XDS_WATCHED)]),
    (BOOTSTRAP, "admin", &[compat("admin_pages")]),
    (BOOTSTRAP, "watchdogs", &[test(LIFECYCLE_IT, "watchdog_counts_a_blocked_worker")]),
    (BOOTSTRAP, "watchdog", &[test(LIFECYCLE_IT, "legacy_watchdog_applies_to_the_workers")]),
    (BOOTSTRAP, "stats_flush_interval", &[test(ADMIN_IT, "stats_flush_interval_sets_when_histograms_are_published")]),
    (BOOTSTRAP, "stats_config", &[compat("stats_tags"), compat("stats_matcher_exclusion")]),
    (BOOTSTRAP, "stats_sinks", &[test(SINKS_IT, SINKS)]),
    (BOOTSTRAP, "layered_runtime", &[compat("runtime_layers"), test(RUNTIME_IT, "filters_read_their_runtime_keys")]),
    (
        BOOTSTRAP,
        "overload_manager",
        &[compat("overload_stop_accepting_requests"), compat("overload_global_downstream_max_connections")],
    ),
    (BOOTSTRAP, "cluster_manager", &[compat("zone_aware_routing"), test(LB_IT, ZONE_SAMPLED)]),
    (BOOTSTRAP, "deferred_stat_options", &[compat("deferred_stats")]),
    (BOOTSTRAP, "typed_dns_resolver_config", &[test(DNS_IT, DNS_BOOTSTRAP)]),
    (BOOTSTRAP, "dns_resolution_config", &[test(DNS_IT, DNS_BOOTSTRAP)]),
    (
        "envoy.config.bootstrap.v3.ClusterManager",
        "local_cluster_name",
        &[
            compat("zone_aware_routing"),
            test(LB_IT, ZONE_SAMPLED),
            test(LB_IT, "local_cluster_name_must_name_a_cluster"),
        ],
    ),
    (
        "envoy.config.bootstrap.v3.ClusterManager",
        "load_stats_config",
        &[test("tests/integration/load_stats.rs", "reports_per_cluster_and_locality_as_envoy")],
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DeferredStatOptions",
        "enable_deferred_creation_stats",
        &[compat("deferred_stats")],
    ),
    (
        "envoy.config.core.v3.GrpcService",
        "envoy_grpc",
        &[test(TRACING_IT, OTEL_EXPORT), compat("filter_ext_authz_grpc")],
    ),
    (
        "envoy.config.core.v3.GrpcService",
        "timeout",
        &[
            test(TRACING_IT, "an_opentelemetry_export_is_abandoned_at_the_grpc_timeout"),
            test("tests/integration/xds_connection.rs", "the_grpc_timeout_does_not_end_an_ads_stream_as_in_envoy"),
        ],
    ),
    ("envoy.config.core.v3.GrpcService", "initial_metadata", &[test(OTEL_SINK_IT, OTEL_SINK)]),
    (
        "envoy.config.core.v3.GrpcService.EnvoyGrpc",
        "cluster_name",
        &[test(TRACING_IT, OTEL_EXPORT), compat("filter_ext_authz_grpc"), test(OTEL_SINK_IT, OTEL_SINK)],
    ),
    ("envoy.config.core.v3.GrpcService.EnvoyGrpc", "authority", &[test(OTEL_SINK_IT, OTEL_SINK)]),
    (OVERLOAD, "refresh_interval", &[compat("overload_stop_accepting_requests")]),
    (OVERLOAD, "resource_monitors", &[compat("overload_stop_accepting_requests")]),
    (OVERLOAD, "actions", &[compat("overload_stop_accepting_requests"), compat("overload_disable_http_keepalive")]),
    ("envoy.config.overload.v3.ResourceMonitor", "name", &[compat("overload_stop_accepting_requests")]),
    (
        "envoy.config.overload.v3.ResourceMonitor",
        "typed_config",
        &[compat("overload_global_downstream_max_connections")],
    ),
    (
        "envoy.config.overload.v3.OverloadAction",
        "name",
        &[
            compat("overload_stop_accepting_requests"),
            compat("overload_disable_http_keepalive"),
            compat("overload_stop_accepting_connections"),
            compat("overload_reject_incoming_connections"),
        ],
    ),
    ("envoy.config.overload.v3.OverloadAction", "triggers", &[compat("overload_stop_accepting_requests")]),
    (
        "envoy.config.overload.v3.OverloadAction",
        "typed_config",
        &[compat("overload_reduce_timeouts"), test(OVERLOAD_RS, "config_errors_name_the_field")],
    ),
    (SCALE_TIMERS, "timer_scale_factors", &[compat("overload_reduce_timeouts")]),
    (SCALE_TIMER, "timer", &[compat("overload_reduce_timeouts"), test(OVERLOAD_RS, "config_errors_name_the_field")]),
    (SCALE_TIMER, "min_timeout", &[compat("overload_reduce_timeouts")]),
    (SCALE_TIMER, "min_scale", &[test(CODEC_IT, REDUCE_TIMEOUTS_IT)]),
    ("envoy.config.overload.v3.Trigger", "name", &[test(OVERLOAD_RS, "config_errors_name_the_field")]),
    ("envoy.config.overload.v3.Trigger", "threshold", &[compat("overload_stop_accepting_requests")]),
    ("envoy.config.overload.v3.Trigger", "scaled", &[compat("overload_stop_accepting_requests")]),
    ("envoy.config.overload.v3.ThresholdTrigger", "value", &[compat("overload_reject_incoming_connections")]),
    ("envoy.config.overload.v3.ScaledTrigger", "scaling_threshold", &[compat("overload_stop_accepting_requests")]),
    ("envoy.config.overload.v3.ScaledTrigger", "saturation_threshold", &[compat("overload_stop_accepting_requests")]),
    (
        "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
        "max_heap_size_bytes",
        &[compat("overload_stop_accepting_requests")],
    ),
    (
        "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
        "max_active_downstream_connections",
        &[compat("overload_global_downstream_max_connections")],
    ),
    (
        "envoy.extensions.resource_monitors.cgroup_memory.v3.CgroupMemoryConfig",
        "max_memory_bytes",
        &[test(OVERLOAD_RS, "cgroup_memory_reads_v2_then_v1_and_max_memory_bytes_caps_the_limit")],
    ),
    ("envoy.config.bootstrap.v3.LayeredRuntime", "layers", &[compat("runtime_layers")]),
    (RUNTIME_LAYER, "name", &[compat("runtime_layers"), compat("runtime_without_admin_layer")]),
    (RUNTIME_LAYER, "static_layer", &[compat("runtime_layers"), test(RUNTIME_IT, RUNTIME_MODIFY)]),
    (RUNTIME_LAYER, "disk_layer", &[compat("runtime_layers"), test(RUNTIME_IT, RUNTIME_DISK)]),
    (RUNTIME_LAYER, "admin_layer", &[compat("runtime_layers"), test(RUNTIME_IT, RUNTIME_MODIFY)]),
    (RUNTIME_LAYER, "rtds_layer", &[compat("runtime_rtds_file"), test(RTDS_IT, RTDS_ADS), test(RTDS_IT, RTDS_FILE)]),
    ("envoy.config.bootstrap.v3.RuntimeLayer.RtdsLayer", "name", &[test(RTDS_IT, RTDS_ADS)]),
    (
        "envoy.config.bootstrap.v3.RuntimeLayer.RtdsLayer",
        "rtds_config",
        &[test(RTDS_IT, RTDS_ADS), test(RTDS_IT, RTDS_FILE), test(RTDS_IT, "rtds_on_a_delta_stream_matches_envoy")],
    ),
    ("envoy.service.runtime.v3.Runtime", "name", &[test(RTDS_IT, RTDS_ADS)]),
    ("envoy.service.runtime.v3.Runtime", "layer", &[test(RTDS_IT, RTDS_ADS)]),
    (DISK_LAYER, "symlink_root", &[compat("runtime_layers"), test(RUNTIME_IT, RUNTIME_DISK)]),
    (DISK_LAYER, "subdirectory", &[compat("runtime_layers"), test(RUNTIME_IT, RUNTIME_DISK)]),
    (DISK_LAYER, "append_service_cluster", &[compat("runtime_layers")]),
    ("envoy.config.metrics.v3.StatsConfig", "stats_tags", &[compat("stats_tags"), compat("stats_no_default_tags")]),
    ("envoy.config.metrics.v3.StatsConfig", "use_all_default_tags", &[compat("stats_no_default_tags")]),
    (
        "envoy.config.metrics.v3.StatsConfig",
        "stats_matcher",
        &[compat("stats_matcher_exclusion"), compat("stats_matcher_inclusion"), compat("stats_matcher_reject_all")],
    ),
    ("envoy.config.metrics.v3.StatsConfig", "histogram_bucket_settings", &[compat("stats_histogram_buckets")]),
    ("envoy.config.metrics.v3.StatsSink", "name", &[test(SINKS_IT, SINKS)]),
    ("envoy.config.metrics.v3.StatsSink", "typed_config", &[test(SINKS_IT, SINKS)]),
    ("envoy.config.metrics.v3.StatsdSink", "address", &[test(SINKS_IT, SINKS)]),
    ("envoy.config.metrics.v3.StatsdSink", "prefix", &[test(SINKS_IT, SINKS)]),
    ("envoy.config.metrics.v3.DogStatsdSink", "address", &[test(SINKS_IT, SINKS)]),
    ("envoy.config.metrics.v3.DogStatsdSink", "prefix", &[test(SINKS_RS, "statsd_and_dog_statsd_lines_are_envoy_s")]),
    (
        "envoy.config.metrics.v3.DogStatsdSink",
        "max_bytes_per_datagram",
        &[test(SINKS_IT, SINKS), test(SINKS_RS, "max_bytes_per_datagram_batches_lines")],
    ),
    ("envoy.config.metrics.v3.HistogramBucketSettings", "match", &[compat("stats_histogram_buckets")]),
    ("envoy.config.metrics.v3.HistogramBucketSettings", "buckets", &[compat("stats_histogram_buckets")]),
    ("envoy.config.metrics.v3.TagSpecifier", "tag_name", &[compat("stats_tags"), compat("stats_no_default_tags")]),
    ("envoy.config.metrics.v3.TagSpecifier", "regex", &[compat("stats_tags")]),
    ("envoy.config.metrics.v3.TagSpecifier", "fixed_value", &[compat("stats_tags")]),
    ("envoy.config.metrics.v3.StatsMatcher", "reject_all", &[compat("stats_matcher_reject_all")]),
    ("envoy.config.metrics.v3.StatsMatcher", "exclusion_list", &[compat("stats_matcher_exclusion")]),
    ("envoy.config.metrics.v3.StatsMatcher", "inclusion_list", &[compat("stats_matcher_inclusion")]),
    (
        "envoy.type.matcher.v3.ListStringMatcher",
        "patterns",
        &[compat("stats_matcher_exclusion"), compat("stats_matcher_inclusion")],
    ),
    ("envoy.config.bootstrap.v3.Bootstrap.StaticResources", "listeners", &[compat("http_get")]),
    ("envoy.config.bootstrap.v3.Bootstrap.StaticResources", "clusters", &[compat("http_get")]),
    (
        "envoy.config.bootstrap.v3.Bootstrap.StaticResources",
        "secrets",
        &[test(SDS_IT, SDS_STATIC), compat("tls_secrets")],
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources",
        "lds_config",
        &[compat("xds_files"), test(XDS_IT, XDS_REMOVE)],
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources",
        "cds_config",
        &[compat("xds_files"), test(XDS_IT, XDS_REMOVE), test(XDS_IT, XDS_WATCHED)],
    ),
    (
        "envoy.config.bootstrap.v3.Bootstrap.DynamicResources",
        "ads_config",
        &[
            compat("xds_ads"),
            compat("xds_delta_ads"),
            test(ADS_IT, ADS_APPLY),
            test(ADS_IT, ADS_CLUSTER),
            test(ADS_IT, ADS_ENVOY),
        ],
    ),
    // The deprecated plain `path`: the removal test's LDS.
    ("envoy.config.core.v3.ConfigSource", "path", &[test(XDS_IT, XDS_REMOVE)]),
    (
        "envoy.config.core.v3.ConfigSource",
        "path_config_source",
        &[compat("xds_files"), test(XDS_IT, XDS_REMOVE), test(XDS_IT, XDS_WATCHED)],
    ),
    (
        "envoy.config.core.v3.ConfigSource",
        "api_config_source",
        &[test(ADS_IT, ADS_OWN_STREAMS), test(SDS_XDS_IT, SDS_OWN_STREAM)],
    ),
    (
        "envoy.config.core.v3.ConfigSource",
        "ads",
        &[compat("xds_ads"), test(ADS_IT, ADS_APPLY), test(ADS_IT, ADS_ENVOY), test(SDS_XDS_IT, SDS_ADS)],
    ),
    (
        "envoy.config.core.v3.ConfigSource",
        "initial_fetch_timeout",
        &[test(ADS_IT, "initial_fetch_timeout_lets_start_up_go_on_without_an_answer")],
    ),
    (
        "envoy.config.core.v3.ApiConfigSource",
        "api_type",
        &[
            test(ADS_IT, ADS_OWN_STREAMS),
            test(ADS_IT, ADS_CLUSTER),
            test(DELTA_IT, DELTA_OWN_STREAMS),
            compat("xds_delta_ads"),
        ],
    ),
    ("envoy.config.core.v3.ApiConfigSource", "transport_api_version", &[test(ADS_IT, ADS_OWN_STREAMS)]),
    ("envoy.config.core.v3.ApiConfigSource", "grpc_services", &[test(ADS_IT, ADS_OWN_STREAMS)]),
    (
        "envoy.config.core.v3.ApiConfigSource",
        "set_node_on_first_message_only",
        &[
            test(ADS_IT, "a_lost_management_server_is_reconnected_and_resubscribed_keeping_the_config"),
            test(ADS_IT, ADS_ENVOY),
        ],
    ),
    ("envoy.config.core.v3.PathConfigSource", "path", &[compat("xds_files"), test(XDS_IT, XDS_WATCHED)]),
    ("envoy.config.core.v3.PathConfigSource", "watched_directory", &[compat("xds_files"), test(XDS_IT, XDS_WATCHED)]),
    ("envoy.config.core.v3.WatchedDirectory", "path", &[compat("xds_files"), test(XDS_IT, XDS_WATCHED)]),
    ("envoy.config.bootstrap.v3.Admin", "access_log_path", &[test(ADMIN_IT, "admin_access_log_path_and_access_log")]),
    ("envoy.config.bootstrap.v3.Admin", "access_log", &[test(ADMIN_IT, "admin_access_log_path_and_access_log")]),
    ("envoy.config.bootstrap.v3.Admin", "address", &[compat("admin_pages")]),
    (
        "envoy.config.bootstrap.v3.Watchdogs",
        "main_thread_watchdog",
        &[test(LIFECYCLE_IT, "main_thread_watchdog_counts_a_blocked_main_thread")],
    ),
    (
        "envoy.config.bootstrap.v3.Watchdogs",
        "worker_watchdog",
        &[test(LIFECYCLE_IT, "watchdog_counts_a_blocked_worker")],
    ),
    ("envoy.config.bootstrap.v3.Watchdog", "miss_timeout", &[test(LIFECYCLE_IT, "watchdog_counts_a_blocked_worker")]),
    (
        "envoy.config.bootstrap.v3.Watchdog",
        "megamiss_timeout",
        &[test(LIFECYCLE_IT, "watchdog_counts_a_blocked_worker")],
    ),
    (
        "envoy.config.bootstrap.v3.Watchdog",
        "kill_timeout",
        &[test(LIFECYCLE_IT, "watchdog_kill_timeout_aborts_a_stuck_process")],
    ),
    (
        "envoy.config.bootstrap.v3.Watchdog",
        "multikill_timeout",
        &[test(LIFECYCLE_IT, "watchdog_multikill_aborts_when_enough_workers_are_stuck")],
    ),
    (
        "envoy.config.bootstrap.v3.Watchdog",
        "multikill_threshold",
        &[test(LIFECYCLE_IT, "watchdog_multikill_threshold_spares_fewer_stuck_workers")],
    ),
    (
        "envoy.type.v3.Percent",
        "value",
        &[test(LIFECYCLE_IT, "watchdog_multikill_threshold_spares_fewer_stuck_workers")],
    ),
    ("envoy.config.core.v3.Address", "socket_address", &[compat("http_get")]),
    ("envoy.config.core.v3.SocketAddress", "address", &[compat("http_get")]),
    ("envoy.config.core.v3.SocketAddress", "port_value", &[compat("admin_pages")]),
    ("envoy.config.core.v3.SocketAddress", "ipv4_compat", &[compat("listener_ipv4_compat")]),
    (LISTENER, "name", &[compat("admin_pages")]),
    (LISTENER, "address", &[compat("admin_pages")]),
    (LISTENER, "stat_prefix", &[compat("stat_prefixes")]),
    (LISTENER, "filter_chains", &[compat("http_get"), compat("listener_chain_match")]),
    (LISTENER, "default_filter_chain", &[test(LPATH_IT, PP_CHAINS)]),
    (LISTENER, "per_connection_buffer_limit_bytes", &[compat("retry_buffer_limit")]),
    (LISTENER, "listener_filters", &[compat("listener_sni"), compat("listener_chain_match")]),
    (LISTENER, "listener_filters_timeout", &[test(LPATH_IT, LF_TIMEOUT), compat("listener_filters_timeout")]),
    (
        LISTENER,
        "continue_on_listener_filters_timeout",
        &[test(LPATH_IT, LF_TIMEOUT), compat("listener_filters_timeout")],
    ),
    (LISTENER, "enable_reuse_port", &[test(TCP_IT, "shared_socket_without_reuse_port_also_serves")]),
    (LISTENER, "traffic_direction", &[compat("tracing_zipkin")]),
    (
        LISTENER,
        "bypass_overload_manager",
        &[compat("overload_stop_accepting_requests"), compat("overload_reject_incoming_connections")],
    ),
    (
        LISTENER,
        "access_log",
        &[
            compat("listener_access_log"),
            compat("listener_access_log_formats"),
            compat("listener_access_log_connections"),
            test(CONFIG_ERRORS_IT, "listener_access_log_takes_envoys_default_format"),
        ],
    ),
    (
        "envoy.config.listener.v3.FilterChain",
        "filter_chain_match",
        &[compat("listener_chain_match"), compat("listener_sni")],
    ),
    ("envoy.config.listener.v3.FilterChain", "filters", &[compat("http_get")]),
    ("envoy.config.listener.v3.FilterChain", "transport_socket", &[test(TLS_IT, TLS_HTTP1), compat("tls_termination")]),
    (
        "envoy.config.listener.v3.FilterChain",
        "transport_socket_connect_timeout",
        &[test(TLS_IT, "a_handshake_that_does_not_finish_in_time_is_closed")],
    ),
    (FCM, "destination_port", &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, PP_CHAINS)]),
    (FCM, "prefix_ranges", &[test(FCM_RS, FCM_TABLE)]),
    (FCM, "direct_source_prefix_ranges", &[test(FCM_RS, FCM_TABLE)]),
    (FCM, "source_type", &[test(FCM_RS, FCM_TABLE)]),
    (FCM, "source_prefix_ranges", &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, PP_CHAINS)]),
    (FCM, "source_ports", &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, PP_CHAINS)]),
    (
        FCM,
        "server_names",
        &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, "sni_passthrough_routes_each_server_name_to_its_upstream")],
    ),
    (FCM, "transport_protocol", &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, LF_TIMEOUT)]),
    (FCM, "application_protocols", &[test(FCM_RS, FCM_TABLE), compat("listener_http_inspector")]),
    ("envoy.config.core.v3.CidrRange", "address_prefix", &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, PP_CHAINS)]),
    ("envoy.config.core.v3.CidrRange", "prefix_len", &[test(FCM_RS, FCM_TABLE), test(LPATH_IT, PP_CHAINS)]),
    ("envoy.config.listener.v3.Filter", "typed_config", &[compat("tcp_proxy"), compat("http_get")]),
    ("envoy.config.listener.v3.ListenerFilter", "typed_config", &[compat("listener_sni")]),
    (CLUSTER, "name", &[compat("http_get")]),
    (CLUSTER, "alt_stat_name", &[compat("stat_prefixes")]),
    (CLUSTER, "type", &[compat("endpoint_hostname")]),
    (CLUSTER, "connect_timeout", &[test(UPSTREAM_IT, "connect_timeout_bounds_an_unanswered_connect")]),
    (
        CLUSTER,
        "lb_policy",
        &[test(LB_IT, "least_request_prefers_an_idle_host_over_a_busy_one"), test(LB_IT, "random_reaches_every_host")],
    ),
    (CLUSTER, "least_request_lb_config", &[test(LB_IT, "least_request_prefers_an_idle_host_over_a_busy_one")]),
    (CLUSTER, "original_dst_lb_config", &[test(OD_IT, OD_HEADER), compat("cluster_original_dst")]),
    (CLUSTER, "cleanup_interval", &[test(OD_IT, OD_RESTORED)]),
    (
        CLUSTER,
        "load_balancing_policy",
        &[test(LB_IT, "typed_least_request_policy_prefers_an_idle_host"), compat("load_balancing_policy")],
    ),
    (CLUSTER, "load_assignment", &[compat("http_get")]),
    (CLUSTER, "eds_cluster_config", &[compat("eds_files"), test(EDS_IT, EDS_FOLLOW)]),
    (CLUSTER, "dns_refresh_rate", &[test(UPSTREAM_IT, "dns_refresh_rate_sets_how_often_names_are_resolved")]),
    (
        CLUSTER,
        "dns_failure_refresh_rate",
        &[test(UPSTREAM_IT, "dns_failure_refresh_rate_backs_off_after_a_failed_resolution")],
    ),
    (CLUSTER, "dns_jitter", &[test(DNS_IT, "dns_jitter_adds_a_random_wait_after_each_success")]),
    (CLUSTER, "respect_dns_ttl", &[test(DNS_IT, DNS_TTL)]),
    (CLUSTER, "dns_lookup_family", &[compat("endpoint_hostname")]),
    (CLUSTER, "dns_resolvers", &[test(DNS_IT, DNS_FIRST)]),
    (CLUSTER, "use_tcp_for_dns_lookups", &[test(DNS_IT, DNS_BOOTSTRAP)]),
    (CLUSTER, "dns_resolution_config", &[test(DNS_IT, DNS_TTL)]),
    (CLUSTER, "typed_dns_resolver_config", &[test(DNS_IT, DNS_HOSTILE), compat("dns_resolvers")]),
    (CLUSTER, "circuit_breakers", &[compat("circuit_breakers")]),
    (CLUSTER, "max_requests_per_connection", &[compat("max_requests_per_connection")]),
    (CLUSTER, "common_http_protocol_options", &[compat("cluster_common_http_protocol_options")]),
    (
        CLUSTER,
        "http2_protocol_options",
        &[test(H2_UPSTREAM_IT, "deprecated_cluster_http2_protocol_options_speak_http2")],
    ),
    (
        CLUSTER,
        "protocol_selection",
        &[
            test(H2_UPSTREAM_IT, "deprecated_cluster_http2_protocol_options_speak_http2"),
            test(CLUSTER_RS, "use_downstream_protocol_config_follows_the_request_version"),
        ],
    ),
    (CLUSTER, "typed_extension_protocol_options", &[compat("max_requests_per_connection")]),
    (CLUSTER, "common_lb_config", &[compat("locality_weighted")]),
    (CLUSTER, "upstream_connection_options", &[test(CLUSTER_RS, "tcp_keepalive_is_set_on_upstream_connections")]),
    (CLUSTER, "transport_socket", &[test(TLS_IT, TLS_UPSTREAM), compat("tls_upstream")]),
    (CLUSTER, "health_checks", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "timeout", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "interval", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "initial_jitter", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "interval_jitter", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "interval_jitter_percent", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "unhealthy_threshold", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "healthy_threshold", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "reuse_connection", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "http_health_check", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "tcp_health_check", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "grpc_health_check", &[test(HC_IT, HC_GRPC)]),
    (HEALTH_CHECKING, "no_traffic_interval", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "no_traffic_healthy_interval", &[compat("active_health_check")]),
    (HEALTH_CHECKING, "unhealthy_interval", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "unhealthy_edge_interval", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HEALTH_CHECKING, "healthy_edge_interval", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (
        HEALTH_CHECKING,
        "event_log_path",
        &[compat(HC_EVENTS), test(HC_SESSION_RS, HC_EVENTS_UNIT), test(HC_IT, HC_EVENTS_IT)],
    ),
    (HEALTH_CHECKING, "event_logger", &[compat(HC_EVENTS)]),
    (HEALTH_CHECKING, "always_log_health_check_failures", &[compat(HC_EVENTS), test(HC_SESSION_RS, HC_EVENTS_UNIT)]),
    (HEALTH_CHECKING, "always_log_health_check_success", &[compat(HC_EVENTS), test(HC_SESSION_RS, HC_EVENTS_UNIT)]),
    (
        "envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink",
        "event_log_path",
        &[compat(HC_EVENTS)],
    ),
    (HTTP_HEALTH_CHECK, "host", &[compat("active_health_check")]),
    (HTTP_HEALTH_CHECK, "path", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HTTP_HEALTH_CHECK, "receive", &[compat("active_health_check")]),
    (HTTP_HEALTH_CHECK, "response_buffer_size", &[compat("active_health_check")]),
    (HTTP_HEALTH_CHECK, "request_headers_to_add", &[compat("active_health_check")]),
    (HTTP_HEALTH_CHECK, "request_headers_to_remove", &[compat("active_health_check")]),
    (HTTP_HEALTH_CHECK, "expected_statuses", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HTTP_HEALTH_CHECK, "retriable_statuses", &[compat("active_health_check"), test(HC_IT, HC_HTTP)]),
    (HTTP_HEALTH_CHECK, "codec_client_type", &[compat("active_health_check")]),
    (HTTP_HEALTH_CHECK, "method", &[compat("active_health_check")]),
    ("envoy.config.core.v3.HealthCheck.TcpHealthCheck", "send", &[compat("active_health_check")]),
    ("envoy.config.core.v3.HealthCheck.TcpHealthCheck", "receive", &[compat("active_health_check")]),
    ("envoy.config.core.v3.HealthCheck.GrpcHealthCheck", "service_name", &[test(HC_IT, HC_GRPC)]),
    ("envoy.config.core.v3.HealthCheck.GrpcHealthCheck", "authority", &[test(HC_IT, HC_GRPC)]),
    ("envoy.config.core.v3.HealthCheck.Payload", "text", &[compat("active_health_check")]),
    (
        "envoy.config.core.v3.HealthCheck.Payload",
        "binary",
        &[test(HC_CONFIG_RS, "binary_and_text_payloads_match_alike")],
    ),
    (
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig",
        "eds_config",
        &[compat("eds_files"), test(EDS_IT, EDS_FOLLOW)],
    ),
    (
        "envoy.config.cluster.v3.Cluster.EdsClusterConfig",
        "service_name",
        &[compat("eds_files"), test(EDS_IT, EDS_FOLLOW)],
    ),
    (
        "envoy.config.cluster.v3.UpstreamConnectionOptions",
        "tcp_keepalive",
        &[test(CLUSTER_RS, "tcp_keepalive_is_set_on_upstream_connections")],
    ),
    (
        "envoy.config.core.v3.TcpKeepalive",
        "keepalive_probes",
        &[test(CLUSTER_RS, "tcp_keepalive_is_set_on_upstream_connections")],
    ),
    (
        "envoy.config.core.v3.TcpKeepalive",
        "keepalive_time",
        &[test(CLUSTER_RS, "tcp_keepalive_is_set_on_upstream_connections")],
    ),
    (
        "envoy.config.core.v3.TcpKeepalive",
        "keepalive_interval",
        &[test(CLUSTER_RS, "tcp_keepalive_is_set_on_upstream_connections")],
    ),
    ("envoy.config.cluster.v3.Cluster.CommonLbConfig", "healthy_panic_threshold", &[compat("endpoint_health")]),
    (
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        "zone_aware_lb_config",
        &[compat("zone_aware_routing"), test(LB_IT, ZONE_SAMPLED)],
    ),
    ("envoy.config.cluster.v3.Cluster.CommonLbConfig", "locality_weighted_lb_config", &[compat("locality_weighted")]),
    (LEGACY_ZONE, "routing_enabled", &[test(CLUSTER_RS, COMMON_LB)]),
    (LEGACY_ZONE, "min_cluster_size", &[compat("zone_aware_routing"), test(LB_IT, ZONE_SAMPLED)]),
    (LEGACY_ZONE, "fail_traffic_on_panic", &[test(CLUSTER_RS, COMMON_LB), test(ZONE_RS, "picks_count_envoys_stats")]),
    (
        "envoy.config.cluster.v3.Cluster.RefreshRate",
        "base_interval",
        &[test(UPSTREAM_IT, "dns_failure_refresh_rate_backs_off_after_a_failed_resolution")],
    ),
    (
        "envoy.config.cluster.v3.Cluster.RefreshRate",
        "max_interval",
        &[test(UPSTREAM_IT, "dns_failure_refresh_rate_backs_off_after_a_failed_resolution")],
    ),
    ("envoy.config.core.v3.DnsResolutionConfig", "resolvers", &[test(DNS_IT, DNS_TTL)]),
    ("envoy.config.core.v3.DnsResolutionConfig", "dns_resolver_options", &[test(DNS_IT, DNS_BOOTSTRAP)]),
    ("envoy.config.core.v3.DnsResolverOptions", "use_tcp_for_dns_lookups", &[test(DNS_IT, DNS_BOOTSTRAP)]),
    ("envoy.config.core.v3.DnsResolverOptions", "no_default_search_domain", &[test(DNS_IT, DNS_SEARCH)]),
    (CARES, "resolvers", &[test(DNS_IT, DNS_HOSTILE), compat("dns_resolvers")]),
    (CARES, "use_resolvers_as_fallback", &[test(DNS_IT, DNS_FALLBACK)]),
    (CARES, "filter_unroutable_families", &[test(DNS_IT, DNS_FALLBACK)]),
    (CARES, "dns_resolver_options", &[test(DNS_IT, DNS_SEARCH)]),
    (CARES, "query_timeout_seconds", &[test(DNS_IT, DNS_HOSTILE), compat("dns_resolvers")]),
    (CARES, "query_tries", &[test(DNS_IT, DNS_HOSTILE), compat("dns_resolvers")]),
    (CARES, "edns0_max_payload_size", &[test(DNS_IT, DNS_SEARCH)]),
    (
        "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig",
        "num_retries",
        &[test(DNS_IT, "the_getaddrinfo_resolver_fails_a_name_without_address")],
    ),
    (
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
        "choice_count",
        &[test(LB_IT, "least_request_prefers_an_idle_host_over_a_busy_one")],
    ),
    (
        "envoy.config.cluster.v3.Cluster.LeastRequestLbConfig",
        "active_request_bias",
        &[
            test("src/upstream/cluster.rs", "upstream_lb_policies_are_parsed"),
            test("src/upstream/load_balancer.rs", "weighted_least_request_divides_weight_by_active_requests"),
        ],
    ),
    (OD_LB, "use_http_header", &[test(OD_IT, OD_HEADER), compat("cluster_original_dst")]),
    (OD_LB, "http_header_name", &[test(CLUSTER_RS, OD_UNIT), compat("cluster_original_dst")]),
    (OD_LB, "upstream_port_override", &[test(OD_IT, OD_RESTORED), compat("cluster_original_dst")]),
    ("envoy.config.cluster.v3.LoadBalancingPolicy", "policies", &[compat("load_balancing_policy")]),
    (
        "envoy.config.cluster.v3.LoadBalancingPolicy.Policy",
        "typed_extension_config",
        &[compat("load_balancing_policy")],
    ),
    ("envoy.config.core.v3.TypedExtensionConfig", "typed_config", &[compat("load_balancing_policy")]),
    (
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
        "locality_lb_config",
        &[test(CLUSTER_RS, "load_balancing_policy_takes_the_first_policy_envoy_implements")],
    ),
    (
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        "choice_count",
        &[test(LB_IT, "typed_least_request_policy_prefers_an_idle_host")],
    ),
    (
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        "active_request_bias",
        &[
            test(CLUSTER_RS, "load_balancing_policy_takes_the_first_policy_envoy_implements"),
            test("src/upstream/load_balancer.rs", "weighted_least_request_divides_weight_by_active_requests"),
        ],
    ),
    (
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
        "locality_lb_config",
        &[test(CLUSTER_RS, "load_balancing_policy_takes_the_first_policy_envoy_implements")],
    ),
    (
        "envoy.extensions.load_balancing_policies.random.v3.Random",
        "locality_lb_config",
        &[
            compat("load_balancing_policy"),
            test(CLUSTER_RS, "load_balancing_policy_takes_the_first_policy_envoy_implements"),
        ],
    ),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig",
        "zone_aware_lb_config",
        &[compat("zone_aware_routing")],
    ),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig",
        "locality_weighted_lb_config",
        &[
            compat("load_balancing_policy"),
            test(CLUSTER_RS, "load_balancing_policy_takes_the_first_policy_envoy_implements"),
        ],
    ),
    (ZONE, "routing_enabled", &[compat("zone_aware_routing"), test(ZONE_RS, "picks_count_envoys_stats")]),
    (ZONE, "min_cluster_size", &[compat("zone_aware_routing"), test(CLUSTER_RS, LB_REFUSES)]),
    (ZONE, "fail_traffic_on_panic", &[test(ZONE_RS, "picks_count_envoys_stats")]),
    (ZONE, "force_locality_direct_routing", &[test(CLUSTER_RS, LB_REFUSES)]),
    (ZONE, "force_local_zone", &[compat("zone_aware_routing"), test(CLUSTER_RS, LB_REFUSES)]),
    (
        "envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.ZoneAwareLbConfig.ForceLocalZone",
        "min_size",
        &[
            test(CLUSTER_RS, LB_REFUSES),
            test(ZONE_RS, "routing_is_off_for_small_clusters_and_a_local_cluster_without_the_node"),
        ],
    ),
    (
        "envoy.config.core.v3.RuntimeDouble",
        "default_value",
        &[test("src/upstream/cluster.rs", "upstream_lb_policies_are_parsed")],
    ),
    (
        "envoy.config.core.v3.RuntimeDouble",
        "runtime_key",
        &[
            test("src/upstream/cluster.rs", "upstream_lb_policies_are_parsed"),
            test("src/upstream/load_balancer.rs", "least_request_reads_its_bias_from_the_runtime_at_refresh"),
        ],
    ),
    ("envoy.config.cluster.v3.CircuitBreakers", "thresholds", &[compat("circuit_breakers")]),
    ("envoy.config.cluster.v3.CircuitBreakers.Thresholds", "priority", &[compat("circuit_breakers")]),
    ("envoy.config.cluster.v3.CircuitBreakers.Thresholds", "max_connections", &[compat("circuit_breakers")]),
    ("envoy.config.cluster.v3.CircuitBreakers.Thresholds", "max_pending_requests", &[compat("circuit_breakers")]),
    ("envoy.config.cluster.v3.CircuitBreakers.Thresholds", "max_requests", &[compat("circuit_breakers")]),
    ("envoy.config.cluster.v3.CircuitBreakers.Thresholds", "max_retries", &[compat("retries")]),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options",
        &[compat("max_requests_per_connection")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "upstream_http_protocol_options",
        &[test(TLS_IT, TLS_AUTO_SNI), compat("tls_upstream_auto")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config",
        &[compat("max_requests_per_connection")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "use_downstream_protocol_config",
        &[
            test(H2_UPSTREAM_IT, "use_downstream_protocol_config_sends_http11_for_an_http11_request"),
            test(H2_UPSTREAM_IT, "use_downstream_protocol_config_sends_http2_for_an_http2_request"),
            test(CLUSTER_RS, "use_downstream_protocol_config_follows_the_request_version"),
        ],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "auto_config",
        &[test(TLS_IT, TLS_AUTO_CONFIG), compat("tls_upstream_auto")],
    ),
    (
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        "auto_sni",
        &[test(TLS_IT, TLS_AUTO_SNI), compat("tls_upstream_auto")],
    ),
    (
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        "auto_san_validation",
        &[test(TLS_IT, TLS_AUTO_SNI), compat("tls_upstream_auto")],
    ),
    (
        "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        "override_auto_sni_header",
        &[test(TLS_IT, "auto_sni_alone_sends_the_host_and_falls_back_to_sni_for_an_address")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        "http_protocol_options",
        &[compat("max_requests_per_connection")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
        "http2_protocol_options",
        &[
            test(H2_UPSTREAM_IT, "get_and_post_reach_an_http2_upstream_with_authority_and_no_hop_by_hop_headers"),
            compat("http2_upstream"),
        ],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        "http_protocol_options",
        &[test(CLUSTER_RS, "use_downstream_protocol_config_follows_the_request_version")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
        "http2_protocol_options",
        &[
            test(CLUSTER_RS, "use_downstream_protocol_config_follows_the_request_version"),
            test(H2_UPSTREAM_IT, "use_downstream_protocol_config_sends_http2_for_an_http2_request"),
        ],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        "http_protocol_options",
        &[test(TLS_IT, TLS_AUTO_CONFIG), compat("tls_upstream_auto")],
    ),
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        "http2_protocol_options",
        &[test(TLS_IT, TLS_AUTO_CONFIG), compat("tls_upstream_auto")],
    ),
    ("envoy.config.core.v3.Http1ProtocolOptions", "accept_http_10", &[compat("http10")]),
    ("envoy.config.core.v3.Http1ProtocolOptions", "default_host_for_http_10", &[compat("default_host_for_http_10")]),
    ("envoy.config.core.v3.Http1ProtocolOptions", "allow_custom_methods", &[compat("hostile_options")]),
    ("envoy.config.core.v3.Http1ProtocolOptions", "allow_chunked_length", &[compat("hostile_options")]),
    ("envoy.config.core.v3.Http1ProtocolOptions", "allow_absolute_url", &[compat("hostile_options")]),
    ("envoy.config.core.v3.Http1ProtocolOptions", "enable_trailers", &[compat("http1_trailers")]),
    (
        HTTP_OPTIONS,
        "idle_timeout",
        &[
            test(CODEC_IT, "an_idle_connection_drains_before_it_closes"),
            test(OPTIONS_IT, "upstream_idle_timeout_closes_pooled_connections"),
        ],
    ),
    (
        HTTP_OPTIONS,
        "max_requests_per_connection",
        &[compat("downstream_max_requests_per_connection"), compat("max_requests_per_connection")],
    ),
    (HTTP_OPTIONS, "max_headers_count", &[compat("max_headers_count")]),
    (HTTP_OPTIONS, "max_stream_duration", &[test(CODEC_IT, "stream_timers_answer_408_or_504")]),
    // No effect in a cluster (NO_EFFECT), but it acts in the connection manager.
    (HTTP_OPTIONS, "headers_with_underscores_action", &[compat("headers_with_underscores")]),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name", &[compat("http_get")]),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment", "endpoints", &[compat("http_get")]),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
        "policy",
        &[test(LB_IT, "overprovisioning_factor_below_100_spreads_load_over_priorities")],
    ),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy",
        "overprovisioning_factor",
        &[test(LB_IT, "overprovisioning_factor_below_100_spreads_load_over_priorities")],
    ),
    ("envoy.config.endpoint.v3.ClusterLoadAssignment.Policy", "drop_overloads", &[compat("drop_overloads")]),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.DropOverload",
        "category",
        &[compat("drop_overloads"), test(LRS_IT, "drop_overloads_and_endpoint_granularity_reported_as_envoy")],
    ),
    (
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.DropOverload",
        "drop_percentage",
        &[compat("drop_overloads")],
    ),
    ("envoy.config.endpoint.v3.LocalityLbEndpoints", "locality", &[compat("endpoint_locality")]),
    ("envoy.config.endpoint.v3.LocalityLbEndpoints", "lb_endpoints", &[compat("http_get")]),
    ("envoy.config.endpoint.v3.LocalityLbEndpoints", "load_balancing_weight", &[compat("locality_weighted")]),
    (
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        "priority",
        &[compat("endpoint_priority"), compat("endpoint_priority_json")],
    ),
    ("envoy.config.endpoint.v3.LbEndpoint", "endpoint", &[compat("http_get")]),
    ("envoy.config.endpoint.v3.LbEndpoint", "health_status", &[compat("endpoint_health")]),
    ("envoy.config.endpoint.v3.LbEndpoint", "metadata", &[compat(HC_EVENTS), test(HC_IT, HC_EVENTS_IT)]),
    (
        "envoy.config.endpoint.v3.LbEndpoint",
        "load_balancing_weight",
        &[compat("lb_round_robin"), test(UPSTREAM_IT, "host_weights_max_host_weight_and_cluster_manager_stats")],
    ),
    ("envoy.config.core.v3.Metadata", "filter_metadata", &[compat(HC_EVENTS)]),
    ("envoy.config.endpoint.v3.Endpoint", "address", &[compat("http_get")]),
    ("envoy.config.endpoint.v3.Endpoint", "hostname", &[compat("endpoint_hostname")]),
    ("envoy.config.endpoint.v3.Endpoint", "health_check_config", &[compat("active_health_check")]),
    (HC_CONFIG, "port_value", &[compat("active_health_check")]),
    (HC_CONFIG, "hostname", &[test(HC_IT, HC_HTTP)]),
    (HC_CONFIG, "address", &[compat("active_health_check")]),
    (HC_CONFIG, "disable_active_health_check", &[compat("active_health_check")]),
    ("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix", &[compat("tcp_proxy")]),
    ("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "cluster", &[compat("tcp_proxy")]),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "idle_timeout",
        &[test(TCP_IT, "idle_timeout_closes_quiet_connections")],
    ),
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "max_connect_attempts",
        &[compat("tcp_proxy"), test(TCP_IT, "max_connect_attempts_retries_other_hosts")],
    ),
    ("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "access_log", &[compat("tcp_proxy_access_log")]),
    (HCM, "codec_type", &[compat("http2_preface")]),
    (HCM, "stat_prefix", &[compat("http_get")]),
    (HCM, "route_config", &[compat("http_get")]),
    (HCM, "rds", &[compat("rds_files"), test(RDS_IT, RDS_FILE)]),
    (HCM, "http_filters", &[compat("http_filters")]),
    (HCM, "common_http_protocol_options", &[compat("max_headers_count"), compat("headers_with_underscores")]),
    (HCM, "server_name", &[compat("server_header")]),
    (HCM, "server_header_transformation", &[compat("server_header")]),
    (HCM, "max_request_headers_kb", &[compat("max_request_headers_kb")]),
    (HCM, "stream_idle_timeout", &[compat("route_idle_timeout"), test(CODEC_IT, "stream_timers_answer_408_or_504")]),
    (HCM, "drain_timeout", &[compat("idle_drain"), test(CODEC_IT, "an_idle_connection_drains_before_it_closes")]),
    (
        HCM,
        "delayed_close_timeout",
        &[
            compat("delayed_close"),
            test(CODEC_IT, "delayed_close_timeout_waits_for_the_client_after_a_local_reply"),
            test(H2_IT, "delayed_close_timeout_waits_for_the_client_after_a_goaway"),
            test(CODEC_IT, "a_reply_to_a_failed_upstream_request_closes_at_once"),
            test(CODEC_IT, "a_reset_during_the_delayed_close_wait_is_a_local_close_at_the_timeout"),
        ],
    ),
    (HCM, "local_reply_config", &[compat("local_reply_config")]),
    (HCM, "upgrade_configs", &[test(PROXY_IT, WEBSOCKET_IT), test(H2_WEBSOCKET_IT, H2_WEBSOCKET)]),
    (HCM, "request_timeout", &[test(CODEC_IT, "stream_timers_answer_408_or_504")]),
    (
        HCM,
        "request_headers_timeout",
        &[compat("request_headers_timeout"), test(CODEC_IT, "slowloris_gets_408_from_request_headers_timeout")],
    ),
    (HCM, "access_log", &[test(ACCESS_LOG_IT, "stderr_access_log")]),
    (HCM, "use_remote_address", &[compat("forwarded_headers")]),
    (HCM, "xff_num_trusted_hops", &[compat("forwarded_headers")]),
    (HCM, "generate_request_id", &[compat("request_id_disabled")]),
    (HCM, "strip_matching_host_port", &[compat("host_port_stripping")]),
    (HCM, "strip_any_host_port", &[compat("host_port_stripping")]),
    (HCM, "http_protocol_options", &[compat("http10")]),
    (HCM, "normalize_path", &[compat("path_normalization")]),
    (HCM, "merge_slashes", &[compat("path_normalization")]),
    (HCM, "path_with_escaped_slashes_action", &[compat("path_normalization")]),
    (HCM, "via", &[compat("via_user_agent")]),
    (HCM, "add_user_agent", &[compat("via_user_agent")]),
    (HCM, "proxy_100_continue", &[compat("proxy_100_continue_false")]),
    (HCM, "http2_protocol_options", &[test(H2_IT, H2_SETTINGS)]),
    (HCM, "tracing", &[compat("tracing_zipkin"), test(TRACING_IT, TRACING_SPANS)]),
    (HCM, "forward_client_cert_details", &[compat("tls_forward_client_cert")]),
    (HCM, "set_current_client_cert_details", &[compat("tls_forward_client_cert")]),
    (HCM, "stream_error_on_invalid_http_message", &[test(H2_IT, H2_STREAM_ERROR)]),
    (HCM_RDS, "config_source", &[test(RDS_IT, RDS_FILE), test(RDS_IT, "rds_config_errors_name_the_field")]),
    (HCM_RDS, "route_config_name", &[compat("rds_files"), test(RDS_IT, RDS_FILE)]),
    (HCM_UPGRADE, "upgrade_type", &[test(PROXY_IT, WEBSOCKET_IT)]),
    (HCM_UPGRADE, "enabled", &[test(PROXY_IT, WEBSOCKET_IT)]),
    (XFCC_DETAILS, "subject", &[compat("tls_forward_client_cert")]),
    (XFCC_DETAILS, "uri", &[compat("tls_forward_client_cert")]),
    (XFCC_DETAILS, "cert", &[compat("tls_forward_client_cert"), test(XFCC_RS, XFCC_PEM)]),
    (XFCC_DETAILS, "chain", &[compat("tls_forward_client_cert"), test(XFCC_RS, XFCC_PEM)]),
    (XFCC_DETAILS, "dns", &[compat("tls_forward_client_cert")]),
    (
        HCM_TRACING,
        "client_sampling",
        &[test(TRACING_IT, TRACING_SPANS), test(TRACING_UNIT, "client_trace_id_and_overall_veto")],
    ),
    (
        HCM_TRACING,
        "random_sampling",
        &[compat("tracing_zipkin"), test(TRACING_UNIT, "random_sampling_marks_the_request_id")],
    ),
    (
        HCM_TRACING,
        "overall_sampling",
        &[test(TRACING_IT, TRACING_SPANS), test(TRACING_UNIT, "client_trace_id_and_overall_veto")],
    ),
    (HCM_TRACING, "max_path_tag_length", &[test(TRACING_IT, TRACING_SPANS)]),
    (HCM_TRACING, "custom_tags", &[test(TRACING_IT, TRACING_SPANS)]),
    (HCM_TRACING, "provider", &[compat("tracing_zipkin")]),
    (HCM_TRACING, "spawn_upstream_span", &[test(SKYWALKING_IT, "a_stream_the_collector_ends_is_opened_again")]),
    ("envoy.config.trace.v3.Tracing.Http", "name", &[compat("tracing_zipkin")]),
    ("envoy.config.trace.v3.Tracing.Http", "typed_config", &[compat("tracing_zipkin")]),
    (CUSTOM_TAG, "tag", &[test(TRACING_IT, TRACING_SPANS)]),
    (CUSTOM_TAG, "literal", &[test(TRACING_IT, TRACING_SPANS)]),
    (CUSTOM_TAG, "environment", &[test(TRACING_IT, TRACING_SPANS)]),
    (CUSTOM_TAG, "request_header", &[test(TRACING_IT, TRACING_SPANS)]),
    ("envoy.type.tracing.v3.CustomTag.Literal", "value", &[test(TRACING_IT, TRACING_SPANS)]),
    ("envoy.type.tracing.v3.CustomTag.Environment", "name", &[test(TRACING_IT, TRACING_SPANS)]),
    ("envoy.type.tracing.v3.CustomTag.Environment", "default_value", &[test(TRACING_IT, TRACING_SPANS)]),
    ("envoy.type.tracing.v3.CustomTag.Header", "name", &[test(TRACING_IT, TRACING_SPANS)]),
    ("envoy.type.tracing.v3.CustomTag.Header", "default_value", &[test(TRACING_IT, TRACING_SPANS)]),
    // Downstream (the connection manager's codec), then upstream (a cluster's client).
    (
        H2_OPTIONS,
        "hpack_table_size",
        &[test(H2_IT, H2_SETTINGS), test(H2_UPSTREAM_IT, "http2_protocol_options_go_into_the_clients_settings")],
    ),
    (
        H2_OPTIONS,
        "max_concurrent_streams",
        &[
            test(H2_IT, H2_SETTINGS),
            test(H2_UPSTREAM_IT, "http2_protocol_options_go_into_the_clients_settings"),
            test(
                H2_UPSTREAM_IT,
                "the_clusters_max_concurrent_streams_and_max_requests_per_connection_limit_a_connection",
            ),
        ],
    ),
    (
        H2_OPTIONS,
        "initial_stream_window_size",
        &[
            test(H2_IT, H2_SETTINGS),
            test(H2_UPSTREAM_IT, "http2_protocol_options_go_into_the_clients_settings"),
            test(H2_UPSTREAM_IT, "a_chunked_request_body_streams_both_ways_under_http2_flow_control"),
        ],
    ),
    (
        H2_OPTIONS,
        "initial_connection_window_size",
        &[
            test(H2_IT, H2_SETTINGS),
            test(H2_UPSTREAM_IT, "http2_protocol_options_go_into_the_clients_settings"),
            test(H2_UPSTREAM_IT, "a_chunked_request_body_streams_both_ways_under_http2_flow_control"),
        ],
    ),
    (H2_OPTIONS, "allow_connect", &[test(H2_IT, H2_SETTINGS), test(H2_WEBSOCKET_IT, H2_WEBSOCKET)]),
    (
        H2_OPTIONS,
        "max_consecutive_inbound_frames_with_empty_payload",
        &[test(H2_IT, "the_flood_limits_are_the_configured_ones")],
    ),
    (H2_OPTIONS, "max_inbound_priority_frames_per_stream", &[test(H2_IT, "the_flood_limits_are_the_configured_ones")]),
    (
        H2_OPTIONS,
        "max_inbound_window_update_frames_per_data_frame_sent",
        &[test(H2_IT, "window_updates_are_allowed_per_data_frame_sent")],
    ),
    (H2_OPTIONS, "connection_keepalive", &[test(H2_IT, H2_KEEPALIVE)]),
    (H2_OPTIONS, "max_outbound_frames", &[test(H2_IT, H2_OUTBOUND_LIMITS)]),
    (H2_OPTIONS, "max_outbound_control_frames", &[test(H2_IT, H2_OUTBOUND_LIMITS)]),
    (H2_OPTIONS, "override_stream_error_on_invalid_http_message", &[test(H2_IT, H2_STREAM_ERROR)]),
    ("envoy.config.core.v3.KeepaliveSettings", "interval", &[test(H2_IT, H2_KEEPALIVE)]),
    ("envoy.config.core.v3.KeepaliveSettings", "timeout", &[test(H2_IT, H2_KEEPALIVE)]),
    ("envoy.config.core.v3.KeepaliveSettings", "interval_jitter", &[test(H2_IT, H2_KEEPALIVE)]),
    ("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", "name", &[compat("http_filter_names")]),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        "typed_config",
        &[compat("http_filters")],
    ),
    ("envoy.extensions.filters.http.router.v3.Router", "start_child_span", &[test(SKYWALKING_IT, SKYWALKING_REFUSED)]),
    ("envoy.config.accesslog.v3.AccessLog", "typed_config", &[test(ACCESS_LOG_IT, "stderr_access_log")]),
    ("envoy.config.accesslog.v3.AccessLog", "filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AccessLogFilter", "status_code_filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AccessLogFilter", "duration_filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AccessLogFilter", "not_health_check_filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AccessLogFilter", "and_filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AccessLogFilter", "or_filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AccessLogFilter", "response_flag_filter", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.StatusCodeFilter", "comparison", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.DurationFilter", "comparison", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.ComparisonFilter", "op", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.ComparisonFilter", "value", &[compat("access_log_filters")]),
    ("envoy.config.core.v3.RuntimeUInt32", "default_value", &[compat("access_log_filters")]),
    ("envoy.config.core.v3.RuntimeUInt32", "runtime_key", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.AndFilter", "filters", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.OrFilter", "filters", &[compat("access_log_filters")]),
    ("envoy.config.accesslog.v3.ResponseFlagFilter", "flags", &[compat("access_log_filters")]),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path",
        &[test(ACCESS_LOG_IT, "file_access_log_path_and_its_legacy_formats")],
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "format",
        &[test(ACCESS_LOG_IT, "file_access_log_path_and_its_legacy_formats")],
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "json_format",
        &[test(ACCESS_LOG_IT, "file_access_log_path_and_its_legacy_formats")],
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "typed_json_format",
        &[test(ACCESS_LOG_IT, "file_access_log_path_and_its_legacy_formats")],
    ),
    (
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "log_format",
        &[test(ACCESS_LOG_IT, "file_access_log_path_and_its_legacy_formats")],
    ),
    (
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "log_format",
        &[test(ACCESS_LOG_IT, "stdout_access_log")],
    ),
    (
        "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
        "log_format",
        &[test(ACCESS_LOG_IT, "stderr_access_log")],
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        "text_format",
        &[test(ACCESS_LOG_IT, "file_access_log_path_and_its_legacy_formats")],
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        "text_format_source",
        &[test(ACCESS_LOG_IT, "stderr_access_log")],
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        "json_format",
        &[test(ACCESS_LOG_IT, "json_format_lines_are_json_objects")],
    ),
    (
        "envoy.config.core.v3.SubstitutionFormatString",
        "omit_empty_values",
        &[test("src/formatter/tests.rs", "substitution_format_from_proto")],
    ),
    ("envoy.config.core.v3.SubstitutionFormatString", "content_type", &[compat("local_reply_config")]),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig",
        "mappers",
        &[compat("local_reply_config")],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig",
        "body_format",
        &[compat("local_reply_config")],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        "filter",
        &[compat("local_reply_config")],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        "status_code",
        &[compat("local_reply_config")],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        "body",
        &[compat("local_reply_config")],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        "body_format_override",
        &[compat("local_reply_config")],
    ),
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        "headers_to_add",
        &[compat("local_reply_config")],
    ),
    ("envoy.config.core.v3.DataSource", "inline_string", &[compat("direct_response")]),
    ("envoy.config.core.v3.DataSource", "inline_bytes", &[test("src/router/route.rs", "direct_responses")]),
    ("envoy.config.core.v3.DataSource", "filename", &[test("src/router/route.rs", "direct_responses")]),
    (
        "envoy.config.core.v3.DataSource",
        "environment_variable",
        &[test(ROUTING_IT, "direct_response_body_from_an_environment_variable")],
    ),
    // --- router::ROUTE_SUPPORTED_FIELDS
    (ROUTE_CONFIG, "virtual_hosts", &[compat("vhost_domains")]),
    (ROUTE_CONFIG, "response_headers_to_add", &[compat("header_edits")]),
    (ROUTE_CONFIG, "response_headers_to_remove", &[compat("header_edits")]),
    (ROUTE_CONFIG, "request_headers_to_add", &[compat("header_edits")]),
    (ROUTE_CONFIG, "request_headers_to_remove", &[compat("header_edits_more")]),
    (
        ROUTE_CONFIG,
        "most_specific_header_mutations_wins",
        &[test("src/router/config.rs", "header_mutations_fold_levels_in_envoys_order")],
    ),
    (ROUTE_CONFIG, "validate_clusters", &[compat("validate_clusters")]),
    (
        ROUTE_CONFIG,
        "max_direct_response_body_size_bytes",
        &[test("src/router/route.rs", "direct_response_body_limits")],
    ),
    (ROUTE_CONFIG, "ignore_port_in_host_matching", &[compat("host_port_stripping")]),
    (ROUTE_CONFIG, "vhost_header", &[test("src/router/config.rs", "authority_from_absolute_uri_and_vhost_header")]),
    (ROUTE_CONFIG, "ignore_path_parameters_in_path_matching", &[compat("match_path_parameters")]),
    (
        ROUTE_CONFIG,
        "typed_per_filter_config",
        &[compat("filter_cors_simple"), test("src/router/config.rs", "per_filter_configs_override_by_level")],
    ),
    (VHOST, "domains", &[compat("vhost_domains")]),
    (VHOST, "routes", &[compat("match_path")]),
    (VHOST, "request_headers_to_add", &[compat("header_edits")]),
    (VHOST, "request_headers_to_remove", &[compat("header_edits")]),
    (VHOST, "response_headers_to_add", &[compat("header_edits")]),
    (VHOST, "response_headers_to_remove", &[compat("header_edits_more")]),
    (VHOST, "typed_per_filter_config", &[compat("filter_cors_preflight")]),
    (VHOST, "retry_policy", &[test("src/router/route_action.rs", "retry_policy_route_overrides_vhost")]),
    (VHOST, "include_request_attempt_count", &[compat("host_rewrite_header_attempt_count")]),
    (VHOST, "cors", &[compat("vhost_cors")]),
    (VHOST, "matcher", &[compat("route_vhost_matcher")]),
    ("envoy.config.route.v3.RouteList", "routes", &[compat("route_vhost_matcher")]),
    (ROUTE_CORS_POLICY, "allow_origin_string_match", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "allow_methods", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "allow_headers", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "expose_headers", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "max_age", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "allow_credentials", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "filter_enabled", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "shadow_enabled", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "allow_private_network_access", &[compat("vhost_cors")]),
    (ROUTE_CORS_POLICY, "forward_not_matching_preflights", &[compat("vhost_cors")]),
    (ROUTE, "name", &[test(ACCESS_LOG_IT, "json_format_lines_are_json_objects")]),
    (ROUTE, "match", &[compat("match_path")]),
    (ROUTE, "route", &[compat("http_get")]),
    (ROUTE, "redirect", &[compat("redirect")]),
    (ROUTE, "direct_response", &[compat("direct_response")]),
    (ROUTE, "typed_per_filter_config", &[compat("filter_local_ratelimit_per_route")]),
    (ROUTE, "request_headers_to_add", &[compat("header_edits")]),
    (ROUTE, "request_headers_to_remove", &[compat("header_edits")]),
    (ROUTE, "response_headers_to_add", &[compat("header_edits")]),
    (ROUTE, "response_headers_to_remove", &[compat("header_edits")]),
    (ROUTE, "decorator", &[compat("tracing_zipkin"), compat("route_decorator")]),
    (ROUTE, "tracing", &[compat("tracing_zipkin"), test(TRACING_IT, TRACING_SPANS)]),
    ("envoy.config.route.v3.Decorator", "operation", &[compat("tracing_zipkin")]),
    ("envoy.config.route.v3.Decorator", "propagate", &[compat("tracing_zipkin")]),
    ("envoy.config.route.v3.Tracing", "client_sampling", &[compat("tracing_zipkin")]),
    ("envoy.config.route.v3.Tracing", "random_sampling", &[compat("tracing_zipkin")]),
    ("envoy.config.route.v3.Tracing", "overall_sampling", &[compat("tracing_zipkin")]),
    ("envoy.config.route.v3.Tracing", "custom_tags", &[test(TRACING_IT, TRACING_SPANS)]),
    (ROUTE_MATCH, "prefix", &[compat("match_path")]),
    (ROUTE_MATCH, "path", &[compat("match_path")]),
    (ROUTE_MATCH, "safe_regex", &[compat("match_regex_headers_query"), test(ROUTING_IT, "path_matchers")]),
    (ROUTE_MATCH, "path_separated_prefix", &[compat("match_path_separated_case")]),
    (ROUTE_MATCH, "case_sensitive", &[compat("match_path_separated_case"), test(ROUTING_IT, "path_matchers")]),
    (ROUTE_MATCH, "headers", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (ROUTE_MATCH, "query_parameters", &[compat("match_query_more"), test(ROUTING_IT, "query_parameter_matchers")]),
    (ROUTE_MATCH, "grpc", &[compat("match_grpc")]),
    (
        ROUTE_MATCH,
        "runtime_fraction",
        &[compat("runtime_layers"), test("src/router/matcher.rs", "runtime_fraction_reads_its_key_from_the_runtime")],
    ),
    (HEADER_MATCHER, "name", &[compat("match_headers_more")]),
    (HEADER_MATCHER, "exact_match", &[test(ROUTING_IT, "header_matchers"), compat("match_headers_legacy")]),
    (HEADER_MATCHER, "safe_regex_match", &[test(ROUTING_IT, "header_matchers"), compat("match_headers_legacy")]),
    (HEADER_MATCHER, "range_match", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (HEADER_MATCHER, "present_match", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (HEADER_MATCHER, "prefix_match", &[compat("match_headers_legacy")]),
    (HEADER_MATCHER, "suffix_match", &[compat("match_headers_legacy")]),
    (HEADER_MATCHER, "contains_match", &[compat("match_headers_legacy")]),
    (HEADER_MATCHER, "string_match", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (HEADER_MATCHER, "invert_match", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (
        HEADER_MATCHER,
        "treat_missing_header_as_empty",
        &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")],
    ),
    ("envoy.config.route.v3.QueryParameterMatcher", "name", &[compat("match_query_more")]),
    (
        "envoy.config.route.v3.QueryParameterMatcher",
        "string_match",
        &[compat("match_query_more"), test(ROUTING_IT, "query_parameter_matchers")],
    ),
    (
        "envoy.config.route.v3.QueryParameterMatcher",
        "present_match",
        &[compat("match_query_more"), test(ROUTING_IT, "query_parameter_matchers")],
    ),
    (ROUTE_ACTION, "cluster", &[compat("weighted_clusters")]),
    (ROUTE_ACTION, "cluster_header", &[compat("cluster_header")]),
    (ROUTE_ACTION, "weighted_clusters", &[compat("weighted_clusters")]),
    (ROUTE_ACTION, "cluster_not_found_response_code", &[compat("cluster_header")]),
    (ROUTE_ACTION, "prefix_rewrite", &[compat("rewrite")]),
    (ROUTE_ACTION, "regex_rewrite", &[compat("regex_rewrite")]),
    (ROUTE_ACTION, "host_rewrite_literal", &[compat("rewrite")]),
    (ROUTE_ACTION, "auto_host_rewrite", &[compat("endpoint_hostname")]),
    (ROUTE_ACTION, "host_rewrite_header", &[compat("host_rewrite_header_attempt_count")]),
    (ROUTE_ACTION, "timeout", &[compat("timeouts"), test(ROUTING_IT, "route_timeout_is_504_upstream_request_timeout")]),
    (ROUTE_ACTION, "idle_timeout", &[compat("route_idle_timeout")]),
    (ROUTE_ACTION, "retry_policy", &[compat("retries")]),
    (ROUTE_ACTION, "max_stream_duration", &[compat("route_max_stream_duration")]),
    (ROUTE_ACTION, "request_mirror_policies", &[compat("route_mirror"), test(ROUTING_IT, MIRROR_IT)]),
    (ROUTE_ACTION, "upgrade_configs", &[test(PROXY_IT, WEBSOCKET_IT)]),
    ("envoy.config.route.v3.RouteAction.UpgradeConfig", "upgrade_type", &[test(PROXY_IT, WEBSOCKET_IT)]),
    ("envoy.config.route.v3.RouteAction.UpgradeConfig", "enabled", &[test(PROXY_IT, WEBSOCKET_IT)]),
    (MIRROR_POLICY, "cluster", &[compat("route_mirror"), test(ROUTING_IT, MIRROR_IT)]),
    (MIRROR_POLICY, "cluster_header", &[compat("route_mirror")]),
    (MIRROR_POLICY, "runtime_fraction", &[compat("route_mirror")]),
    (MIRROR_POLICY, "disable_shadow_host_suffix_append", &[compat("route_mirror")]),
    (
        "envoy.config.route.v3.RouteAction.MaxStreamDuration",
        "max_stream_duration",
        &[compat("route_max_stream_duration")],
    ),
    ("envoy.config.route.v3.WeightedCluster", "clusters", &[compat("weighted_clusters")]),
    (
        "envoy.config.route.v3.WeightedCluster",
        "total_weight",
        &[test(ROUTING_IT, "cluster_cluster_header_and_weighted_clusters")],
    ),
    ("envoy.config.route.v3.WeightedCluster.ClusterWeight", "name", &[compat("weighted_clusters")]),
    ("envoy.config.route.v3.WeightedCluster.ClusterWeight", "weight", &[compat("weighted_clusters")]),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        "request_headers_to_add",
        &[compat("cluster_weight_edits")],
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        "request_headers_to_remove",
        &[compat("cluster_weight_edits")],
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        "response_headers_to_add",
        &[compat("cluster_weight_edits")],
    ),
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        "response_headers_to_remove",
        &[compat("cluster_weight_edits")],
    ),
    ("envoy.config.route.v3.WeightedCluster.ClusterWeight", "host_rewrite_literal", &[compat("cluster_weight_edits")]),
    (RETRY_POLICY, "retry_on", &[compat("retries")]),
    (RETRY_POLICY, "num_retries", &[compat("retries")]),
    (RETRY_POLICY, "per_try_timeout", &[compat("per_try_timeout")]),
    (RETRY_POLICY, "retriable_status_codes", &[compat("retry_status_codes")]),
    (RETRY_POLICY, "retry_back_off", &[compat("retry_back_off")]),
    (RETRY_POLICY, "retry_host_predicate", &[test(PROXY_IT, PREVIOUS_HOSTS)]),
    (RETRY_POLICY, "host_selection_retry_max_attempts", &[test(PROXY_IT, PREVIOUS_HOSTS)]),
    ("envoy.config.route.v3.RetryPolicy.RetryHostPredicate", "name", &[test(PROXY_IT, PREVIOUS_HOSTS)]),
    ("envoy.config.route.v3.RetryPolicy.RetryHostPredicate", "typed_config", &[test(PROXY_IT, PREVIOUS_HOSTS)]),
    (
        "envoy.config.route.v3.RetryPolicy.RetryBackOff",
        "base_interval",
        &[compat("retry_back_off"), test("src/router/upstream_request.rs", "backoff_is_envoys_jittered_exponential")],
    ),
    (
        "envoy.config.route.v3.RetryPolicy.RetryBackOff",
        "max_interval",
        &[test("src/router/upstream_request.rs", "backoff_is_envoys_jittered_exponential")],
    ),
    (REDIRECT, "https_redirect", &[compat("redirect")]),
    (REDIRECT, "scheme_redirect", &[compat("redirect")]),
    (REDIRECT, "host_redirect", &[compat("redirect")]),
    (REDIRECT, "port_redirect", &[compat("redirect")]),
    (REDIRECT, "path_redirect", &[compat("redirect")]),
    (REDIRECT, "prefix_rewrite", &[compat("redirect")]),
    (REDIRECT, "regex_rewrite", &[compat("redirect")]),
    (REDIRECT, "response_code", &[compat("redirect")]),
    (REDIRECT, "strip_query", &[compat("redirect")]),
    ("envoy.config.route.v3.DirectResponseAction", "status", &[compat("direct_response")]),
    ("envoy.config.route.v3.DirectResponseAction", "body", &[compat("direct_response")]),
    ("envoy.config.core.v3.HeaderValueOption", "header", &[compat("header_edits")]),
    ("envoy.config.core.v3.HeaderValueOption", "append", &[compat("header_edits_more")]),
    ("envoy.config.core.v3.HeaderValueOption", "append_action", &[compat("header_edits")]),
    ("envoy.config.core.v3.HeaderValueOption", "keep_empty_value", &[compat("header_edits_more")]),
    ("envoy.config.core.v3.HeaderValue", "key", &[compat("header_edits")]),
    ("envoy.config.core.v3.HeaderValue", "value", &[compat("header_edits")]),
    (STRING_MATCHER, "exact", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (STRING_MATCHER, "prefix", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    (STRING_MATCHER, "suffix", &[compat("match_headers_more")]),
    (STRING_MATCHER, "safe_regex", &[compat("match_regex_headers_query")]),
    (STRING_MATCHER, "contains", &[compat("match_headers_more")]),
    (STRING_MATCHER, "ignore_case", &[compat("match_headers_more")]),
    ("envoy.type.matcher.v3.RegexMatcher", "regex", &[compat("match_regex_headers_query")]),
    ("envoy.type.matcher.v3.RegexMatchAndSubstitute", "pattern", &[compat("regex_rewrite")]),
    ("envoy.type.matcher.v3.RegexMatchAndSubstitute", "substitution", &[compat("regex_rewrite")]),
    ("envoy.type.v3.Int64Range", "start", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    ("envoy.type.v3.Int64Range", "end", &[compat("match_headers_more"), test(ROUTING_IT, "header_matchers")]),
    // --- matcher::supported::MATCHER_SUPPORTED_FIELDS
    ("xds.core.v3.TypedExtensionConfig", "name", &[compat("route_vhost_matcher")]),
    ("xds.core.v3.TypedExtensionConfig", "typed_config", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher", "matcher_list", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher", "matcher_tree", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher", "on_no_match", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.OnMatch", "matcher", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.OnMatch", "action", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList", "matchers", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher", "predicate", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.FieldMatcher", "on_match", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate", "single_predicate", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate", "or_matcher", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate", "and_matcher", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate", "not_matcher", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate", "input", &[compat("route_vhost_matcher")]),
    (
        "xds.type.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate",
        "value_match",
        &[compat("route_vhost_matcher")],
    ),
    ("xds.type.matcher.v3.Matcher.MatcherList.Predicate.PredicateList", "predicate", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherTree", "input", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherTree", "exact_match_map", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherTree", "prefix_match_map", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.Matcher.MatcherTree.MatchMap", "map", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.StringMatcher", "exact", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.StringMatcher", "prefix", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.StringMatcher", "suffix", &[test(MATCH_TREE, "string_matchers_and_predicates")]),
    ("xds.type.matcher.v3.StringMatcher", "safe_regex", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.StringMatcher", "contains", &[test(MATCH_TREE, "string_matchers_and_predicates")]),
    ("xds.type.matcher.v3.StringMatcher", "ignore_case", &[test(MATCH_TREE, "string_matchers_and_predicates")]),
    ("xds.type.matcher.v3.RegexMatcher", "google_re2", &[compat("route_vhost_matcher")]),
    ("xds.type.matcher.v3.RegexMatcher", "regex", &[compat("route_vhost_matcher")]),
    (
        "envoy.config.common.matcher.v3.Matcher",
        "matcher_list",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher",
        "matcher_tree",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher",
        "on_no_match",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.OnMatch",
        "matcher",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.OnMatch",
        "action",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList",
        "matchers",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.FieldMatcher",
        "predicate",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.FieldMatcher",
        "on_match",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate",
        "single_predicate",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate",
        "or_matcher",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate",
        "and_matcher",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate",
        "not_matcher",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate",
        "input",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate.SinglePredicate",
        "value_match",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherList.Predicate.PredicateList",
        "predicate",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherTree",
        "input",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherTree",
        "exact_match_map",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherTree",
        "prefix_match_map",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    (
        "envoy.config.common.matcher.v3.Matcher.MatcherTree.MatchMap",
        "map",
        &[test(MATCH_TREE, "the_deprecated_matcher_reads_as_the_xds_one")],
    ),
    ("envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name", &[compat("route_vhost_matcher")]),
    ("envoy.type.matcher.v3.HttpRequestTrailerMatchInput", "header_name", &[compat("filter_skip_matcher")]),
    ("envoy.type.matcher.v3.HttpResponseHeaderMatchInput", "header_name", &[compat("filter_skip_matcher")]),
    (
        "envoy.type.matcher.v3.HttpRequestQueryParamMatchInput",
        "query_param",
        &[compat("filter_skip_matcher"), test(MATCH_TREE, "errors_name_the_field")],
    ),
    // --- extensions::filters::http::SUPPORTED_FIELDS
    (LOCAL_RATELIMIT, "stat_prefix", &[compat("filter_local_ratelimit_per_route")]),
    (LOCAL_RATELIMIT, "status", &[compat("filter_local_ratelimit_per_route")]),
    (LOCAL_RATELIMIT, "token_bucket", &[compat("filter_local_ratelimit_per_route")]),
    (LOCAL_RATELIMIT, "filter_enabled", &[compat("filter_local_ratelimit_per_route")]),
    (LOCAL_RATELIMIT, "filter_enforced", &[compat("filter_local_ratelimit_per_route")]),
    (
        LOCAL_RATELIMIT,
        "request_headers_to_add_when_not_enforced",
        &[
            compat("filter_local_ratelimit_per_route"),
            test(FILTERS_IT, "local_ratelimit_not_enforced_adds_request_headers"),
        ],
    ),
    (
        LOCAL_RATELIMIT,
        "response_headers_to_add",
        &[test(FILTERS_IT, "local_ratelimit_answers_429_when_the_bucket_is_empty")],
    ),
    (
        LOCAL_RATELIMIT,
        "enable_x_ratelimit_headers",
        &[test("src/extensions/filters/http/local_ratelimit.rs", "status_retry_after_and_x_ratelimit_headers")],
    ),
    (
        LOCAL_RATELIMIT,
        "enable_retry_after_header",
        &[test("src/extensions/filters/http/local_ratelimit.rs", "status_retry_after_and_x_ratelimit_headers")],
    ),
    ("envoy.type.v3.HttpStatus", "code", &[compat("filter_local_ratelimit_per_route")]),
    ("envoy.type.v3.TokenBucket", "max_tokens", &[compat("filter_local_ratelimit_per_route")]),
    ("envoy.type.v3.TokenBucket", "tokens_per_fill", &[compat("filter_local_ratelimit_per_route")]),
    (
        "envoy.type.v3.TokenBucket",
        "fill_interval",
        &[test("src/extensions/filters/http/local_ratelimit.rs", "bucket_exhaustion_and_refill")],
    ),
    ("envoy.config.core.v3.RuntimeFractionalPercent", "default_value", &[compat("filter_local_ratelimit_per_route")]),
    (
        "envoy.config.core.v3.RuntimeFractionalPercent",
        "runtime_key",
        &[
            test(RUNTIME_IT, "filters_read_their_runtime_keys"),
            test("src/router/matcher.rs", "runtime_fraction_reads_its_key_from_the_runtime"),
        ],
    ),
    ("envoy.type.v3.FractionalPercent", "numerator", &[compat("filter_fault_abort")]),
    ("envoy.type.v3.FractionalPercent", "denominator", &[compat("filter_fault_abort")]),
    (CORS_POLICY, "allow_origin_string_match", &[compat("filter_cors_preflight")]),
    (CORS_POLICY, "allow_methods", &[compat("filter_cors_preflight")]),
    (CORS_POLICY, "allow_headers", &[compat("filter_cors_preflight")]),
    (CORS_POLICY, "expose_headers", &[compat("filter_cors_simple")]),
    (CORS_POLICY, "max_age", &[compat("filter_cors_preflight")]),
    (CORS_POLICY, "allow_credentials", &[compat("filter_cors_simple")]),
    (CORS_POLICY, "filter_enabled", &[compat("filter_cors_simple")]),
    (CORS_POLICY, "shadow_enabled", &[compat("filter_cors_simple")]),
    (CORS_POLICY, "allow_private_network_access", &[compat("filter_cors_preflight")]),
    (CORS_POLICY, "forward_not_matching_preflights", &[compat("filter_cors_preflight")]),
    (FAULT, "delay", &[compat("filter_fault_delay")]),
    (FAULT, "abort", &[compat("filter_fault_abort")]),
    (FAULT, "upstream_cluster", &[test("src/extensions/filters/http/fault.rs", "route_override_and_upstream_cluster")]),
    (FAULT, "headers", &[compat("filter_fault_abort")]),
    (FAULT, "max_active_faults", &[compat("filter_fault_abort")]),
    (FAULT, "disable_downstream_cluster_stats", &[compat("filter_fault_downstream_cluster")]),
    (FAULT_ABORT, "http_status", &[compat("filter_fault_abort")]),
    (FAULT_ABORT, "header_abort", &[compat("filter_fault_abort")]),
    (FAULT_ABORT, "percentage", &[compat("filter_fault_abort")]),
    (
        FAULT_ABORT,
        "response_body",
        &[test("src/extensions/filters/http/fault.rs", "route_override_and_upstream_cluster")],
    ),
    (FAULT_DELAY, "fixed_delay", &[compat("filter_fault_delay")]),
    (FAULT_DELAY, "header_delay", &[compat("filter_fault_delay")]),
    (FAULT_DELAY, "percentage", &[compat("filter_fault_delay")]),
    (HEALTH_CHECK, "pass_through_mode", &[compat("filter_health_check_fail")]),
    (HEALTH_CHECK, "headers", &[compat("filter_health_check_fail")]),
    ("envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes", &[compat("filter_buffer")]),
    ("envoy.extensions.filters.http.buffer.v3.BufferPerRoute", "disabled", &[compat("filter_buffer")]),
    ("envoy.extensions.filters.http.buffer.v3.BufferPerRoute", "buffer", &[compat("filter_buffer")]),
    // --- extensions::filters::http::compressor::SUPPORTED_FIELDS
    ("envoy.extensions.filters.http.compressor.v3.Compressor", "compressor_library", &[compat("filter_compressor")]),
    (
        "envoy.extensions.filters.http.compressor.v3.Compressor",
        "response_direction_config",
        &[compat("filter_compressor")],
    ),
    (COMPRESSOR_RESPONSE, "common_config", &[compat("filter_compressor")]),
    (COMPRESSOR_RESPONSE, "disable_on_etag_header", &[compat("filter_compressor")]),
    (COMPRESSOR_RESPONSE, "remove_accept_encoding_header", &[compat("filter_compressor")]),
    (COMPRESSOR_COMMON, "enabled", &[compat("filter_compressor")]),
    (COMPRESSOR_COMMON, "min_content_length", &[compat("filter_compressor")]),
    (COMPRESSOR_COMMON, "content_type", &[compat("filter_compressor")]),
    (
        "envoy.config.core.v3.RuntimeFeatureFlag",
        "default_value",
        &[compat("filter_compressor"), test("src/runtime/feature_flag.rs", "the_runtime_key_overrides_the_default")],
    ),
    (
        "envoy.config.core.v3.RuntimeFeatureFlag",
        "runtime_key",
        &[test("src/runtime/feature_flag.rs", "the_runtime_key_overrides_the_default")],
    ),
    (COMPRESSOR_PER_ROUTE, "disabled", &[compat("filter_compressor_per_route")]),
    (COMPRESSOR_PER_ROUTE, "overrides", &[compat("filter_compressor_per_route")]),
    (
        "envoy.extensions.filters.http.compressor.v3.CompressorOverrides",
        "response_direction_config",
        &[compat("filter_compressor_per_route")],
    ),
    (
        "envoy.extensions.filters.http.compressor.v3.ResponseDirectionOverrides",
        "remove_accept_encoding_header",
        &[compat("filter_compressor_per_route")],
    ),
    (GZIP, "compression_level", &[test(GZIP_RS, "every_setting_is_read_and_checked")]),
    (GZIP, "compression_strategy", &[test(GZIP_RS, "every_setting_is_read_and_checked")]),
    (GZIP, "window_bits", &[test(GZIP_RS, "every_setting_is_read_and_checked"), compat("filter_compressor")]),
    (GZIP, "chunk_size", &[test(GZIP_RS, "every_setting_is_read_and_checked")]),
    (BROTLI, "quality", &[test(BROTLI_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (BROTLI, "encoder_mode", &[test(BROTLI_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (BROTLI, "window_bits", &[test(BROTLI_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (BROTLI, "input_block_bits", &[test(BROTLI_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (BROTLI, "chunk_size", &[test(BROTLI_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (
        BROTLI,
        "disable_literal_context_modeling",
        &[test(BROTLI_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)],
    ),
    (ZSTD, "compression_level", &[test(ZSTD_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (ZSTD, "enable_checksum", &[test(ZSTD_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (ZSTD, "strategy", &[test(ZSTD_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (ZSTD, "chunk_size", &[test(ZSTD_RS, "every_setting_is_read_and_used"), compat(BROTLI_ZSTD_COMPRESSOR)]),
    (DECOMPRESSOR, "decompressor_library", &[compat("filter_decompressor"), test(FILTERS_IT, DECOMPRESSOR_IT)]),
    (DECOMPRESSOR, "request_direction_config", &[compat("filter_decompressor")]),
    (DECOMPRESSOR, "response_direction_config", &[compat("filter_decompressor")]),
    (DECOMPRESSOR_REQUEST, "common_config", &[compat("filter_decompressor")]),
    (DECOMPRESSOR_REQUEST, "advertise_accept_encoding", &[compat("filter_decompressor")]),
    (DECOMPRESSOR_RESPONSE, "common_config", &[compat("filter_decompressor")]),
    (DECOMPRESSOR_COMMON, "enabled", &[compat("filter_decompressor")]),
    (DECOMPRESSOR_COMMON, "ignore_no_transform_header", &[compat("filter_decompressor")]),
    (
        GZIP_INFLATE,
        "window_bits",
        &[compat("filter_decompressor"), test(GZIP_INFLATE_RS, "window_bits_smaller_than_the_stream_s_refuse_it")],
    ),
    (
        GZIP_INFLATE,
        "chunk_size",
        &[compat("filter_decompressor"), test(GZIP_INFLATE_RS, "a_stream_inflates_across_pieces_of_any_size")],
    ),
    (GZIP_INFLATE, "max_inflate_ratio", &[test(GZIP_INFLATE_RS, "max_inflate_ratio_stops_a_bomb")]),
    (
        BROTLI_INFLATE,
        "disable_ring_buffer_reallocation",
        &[compat(BROTLI_ZSTD_DECOMPRESSOR), test(BROTLI_INFLATE_RS, "a_stream_inflates_across_pieces_of_any_size")],
    ),
    (
        BROTLI_INFLATE,
        "chunk_size",
        &[compat(BROTLI_ZSTD_DECOMPRESSOR), test(BROTLI_INFLATE_RS, "a_stream_inflates_across_pieces_of_any_size")],
    ),
    (
        ZSTD_INFLATE,
        "chunk_size",
        &[compat(BROTLI_ZSTD_DECOMPRESSOR), test(ZSTD_INFLATE_RS, "frames_inflate_across_pieces")],
    ),
    (GRPC_BRIDGE, "upgrade_protobuf_to_grpc", &[compat("filter_grpc_http1_bridge")]),
    (GRPC_BRIDGE, "ignore_query_parameters", &[compat("filter_grpc_http1_bridge")]),
    (GRPC_REVERSE_BRIDGE, "content_type", &[compat("filter_grpc_http1_reverse_bridge")]),
    (GRPC_REVERSE_BRIDGE, "withhold_grpc_frames", &[compat("filter_grpc_http1_reverse_bridge")]),
    (GRPC_REVERSE_BRIDGE, "response_size_header", &[compat("filter_grpc_http1_reverse_bridge")]),
    (GRPC_REVERSE_BRIDGE_PER_ROUTE, "disabled", &[compat("filter_grpc_http1_reverse_bridge")]),
    (CSRF, "filter_enabled", &[compat("filter_csrf")]),
    (CSRF, "shadow_enabled", &[compat("filter_csrf")]),
    (CSRF, "additional_origins", &[compat("filter_csrf")]),
    (SET_METADATA, "metadata_namespace", &[compat("filter_set_metadata")]),
    (SET_METADATA, "value", &[compat("filter_set_metadata")]),
    (SET_METADATA, "metadata", &[compat("filter_set_metadata")]),
    (SET_METADATA_ENTRY, "metadata_namespace", &[compat("filter_set_metadata")]),
    (SET_METADATA_ENTRY, "allow_overwrite", &[compat("filter_set_metadata")]),
    (SET_METADATA_ENTRY, "value", &[compat("filter_set_metadata")]),
    (H2M, "request_rules", &[compat("filter_header_to_metadata")]),
    (H2M, "response_rules", &[compat("filter_header_to_metadata")]),
    (H2M, "stat_prefix", &[compat("filter_header_to_metadata")]),
    (H2M_RULE, "header", &[compat("filter_header_to_metadata")]),
    (H2M_RULE, "cookie", &[compat("filter_header_to_metadata")]),
    (H2M_RULE, "on_header_present", &[compat("filter_header_to_metadata")]),
    (H2M_RULE, "on_header_missing", &[compat("filter_header_to_metadata")]),
    (H2M_RULE, "remove", &[compat("filter_header_to_metadata")]),
    (H2M_PAIR, "metadata_namespace", &[compat("filter_header_to_metadata")]),
    (H2M_PAIR, "key", &[compat("filter_header_to_metadata")]),
    (H2M_PAIR, "value", &[compat("filter_header_to_metadata")]),
    (H2M_PAIR, "regex_value_rewrite", &[compat("filter_header_to_metadata")]),
    (H2M_PAIR, "type", &[compat("filter_header_to_metadata")]),
    (H2M_PAIR, "encode", &[compat("filter_header_to_metadata")]),
    ("envoy.extensions.filters.http.rbac.v3.RBAC", "rules", &[compat("filter_rbac")]),
    ("envoy.extensions.filters.http.rbac.v3.RBAC", "matcher", &[compat("filter_rbac_matcher")]),
    ("envoy.extensions.filters.http.rbac.v3.RBAC", "rules_stat_prefix", &[compat("filter_rbac")]),
    ("envoy.extensions.filters.http.rbac.v3.RBAC", "shadow_rules", &[compat("filter_rbac")]),
    ("envoy.extensions.filters.http.rbac.v3.RBAC", "shadow_matcher", &[compat("filter_rbac_matcher")]),
    ("envoy.extensions.filters.http.rbac.v3.RBAC", "shadow_rules_stat_prefix", &[compat("filter_rbac")]),
    ("envoy.extensions.filters.http.rbac.v3.RBACPerRoute", "rbac", &[compat("filter_rbac")]),
    ("envoy.config.rbac.v3.Action", "name", &[compat("filter_rbac_matcher")]),
    ("envoy.config.rbac.v3.Action", "action", &[compat("filter_rbac_matcher")]),
    ("envoy.config.rbac.v3.RBAC", "action", &[compat("filter_rbac")]),
    ("envoy.config.rbac.v3.RBAC", "policies", &[compat("filter_rbac")]),
    ("envoy.config.rbac.v3.Policy", "permissions", &[compat("filter_rbac")]),
    ("envoy.config.rbac.v3.Policy", "principals", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "and_rules", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "or_rules", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "any", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "header", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "url_path", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "destination_ip", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "destination_port", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "destination_port_range", &[compat("filter_rbac")]),
    (RBAC_PERMISSION, "not_rule", &[compat("filter_rbac")]),
    (
        RBAC_PERMISSION,
        "requested_server_name",
        &[compat("filter_rbac"), compat("tls_requested_server_name"), test(TLS_IT, RBAC_TLS)],
    ),
    ("envoy.config.rbac.v3.Permission.Set", "rules", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "and_ids", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "or_ids", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "any", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "authenticated", &[compat("filter_rbac"), test(TLS_IT, RBAC_TLS)]),
    (RBAC_PRINCIPAL, "source_ip", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "direct_remote_ip", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "remote_ip", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "header", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "url_path", &[compat("filter_rbac")]),
    (RBAC_PRINCIPAL, "not_id", &[compat("filter_rbac")]),
    ("envoy.config.rbac.v3.Principal.Set", "ids", &[compat("filter_rbac")]),
    ("envoy.config.rbac.v3.Principal.Authenticated", "principal_name", &[test(TLS_IT, RBAC_TLS)]),
    ("envoy.type.matcher.v3.PathMatcher", "path", &[compat("filter_rbac")]),
    ("envoy.type.v3.Int32Range", "start", &[compat("filter_rbac")]),
    ("envoy.type.v3.Int32Range", "end", &[compat("filter_rbac")]),
    (NETWORK_RBAC, "rules", &[compat("network_rbac_tcp"), compat("network_rbac_http")]),
    (NETWORK_RBAC, "shadow_rules", &[compat("network_rbac_tcp"), compat("network_rbac_http")]),
    (NETWORK_RBAC, "shadow_rules_stat_prefix", &[compat("network_rbac_tcp")]),
    (NETWORK_RBAC, "stat_prefix", &[compat("network_rbac_tcp")]),
    (NETWORK_RBAC, "enforcement_type", &[compat("network_rbac_tcp")]),
    (NETWORK_RBAC, "delay_deny", &[compat("network_rbac_tcp")]),
    (CONNECTION_LIMIT, "stat_prefix", &[compat("network_local_ratelimit")]),
    (CONNECTION_LIMIT, "max_connections", &[test(NETWORK_FILTERS_IT, CONNECTION_LIMIT_TEST)]),
    (CONNECTION_LIMIT, "delay", &[test(NETWORK_FILTERS_IT, CONNECTION_LIMIT_TEST)]),
    (NETWORK_RATE_LIMIT, "stat_prefix", &[compat("network_local_ratelimit")]),
    (NETWORK_RATE_LIMIT, "token_bucket", &[compat("network_local_ratelimit")]),
    ("envoy.extensions.common.matching.v3.ExtensionWithMatcher", "matcher", &[compat("filter_skip_matcher")]),
    ("envoy.extensions.common.matching.v3.ExtensionWithMatcher", "xds_matcher", &[compat("filter_skip_matcher")]),
    ("envoy.extensions.common.matching.v3.ExtensionWithMatcher", "extension_config", &[compat("filter_skip_matcher")]),
    (EXT_AUTHZ, "http_service", &[compat("filter_ext_authz")]),
    (EXT_AUTHZ, "grpc_service", &[compat("filter_ext_authz_grpc")]),
    (EXT_AUTHZ, "failure_mode_allow", &[compat("filter_ext_authz")]),
    (EXT_AUTHZ, "failure_mode_allow_header_add", &[compat("filter_ext_authz")]),
    (EXT_AUTHZ, "status_on_error", &[compat("filter_ext_authz")]),
    (EXT_AUTHZ, "include_peer_certificate", &[compat("filter_ext_authz_tls")]),
    ("envoy.extensions.filters.http.ext_authz.v3.HttpService", "server_uri", &[compat("filter_ext_authz")]),
    ("envoy.extensions.filters.http.ext_authz.v3.HttpService", "path_prefix", &[compat("filter_ext_authz")]),
    ("envoy.extensions.filters.http.ext_authz.v3.HttpService", "authorization_request", &[compat("filter_ext_authz")]),
    ("envoy.extensions.filters.http.ext_authz.v3.HttpService", "authorization_response", &[compat("filter_ext_authz")]),
    ("envoy.config.core.v3.HttpUri", "cluster", &[compat("filter_ext_authz")]),
    ("envoy.config.core.v3.HttpUri", "timeout", &[compat("filter_ext_authz")]),
    (
        "envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest",
        "allowed_headers",
        &[compat("filter_ext_authz")],
    ),
    (
        "envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest",
        "headers_to_add",
        &[compat("filter_ext_authz")],
    ),
    (EXT_AUTHZ_RESPONSE, "allowed_upstream_headers", &[compat("filter_ext_authz")]),
    (EXT_AUTHZ_RESPONSE, "allowed_upstream_headers_to_append", &[compat("filter_ext_authz")]),
    (EXT_AUTHZ_RESPONSE, "allowed_client_headers", &[compat("filter_ext_authz")]),
    ("envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", "disabled", &[compat("filter_ext_authz")]),
    // --- extensions::filters::http::jwt_authn::SUPPORTED_FIELDS
    (JWT_AUTHN, "providers", &[compat("filter_jwt_authn")]),
    (JWT_AUTHN, "rules", &[compat("filter_jwt_authn")]),
    (JWT_AUTHN, "requirement_map", &[compat("filter_jwt_authn")]),
    (JWT_AUTHN, "bypass_cors_preflight", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "issuer", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "audiences", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "local_jwks", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "remote_jwks", &[test(FILTERS_IT, JWT_REMOTE)]),
    (JWT_PROVIDER, "forward", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "from_headers", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "from_params", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "from_cookies", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "forward_payload_header", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "pad_forward_payload_header", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "clock_skew_seconds", &[compat("filter_jwt_authn")]),
    (JWT_PROVIDER, "claim_to_headers", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.RemoteJwks", "http_uri", &[test(FILTERS_IT, JWT_REMOTE)]),
    ("envoy.extensions.filters.http.jwt_authn.v3.RemoteJwks", "cache_duration", &[test(FILTERS_IT, JWT_REMOTE)]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtHeader", "name", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtHeader", "value_prefix", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtClaimToHeader", "header_name", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtClaimToHeader", "claim_name", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.RequirementRule", "match", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.RequirementRule", "requires", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.RequirementRule", "requirement_name", &[compat("filter_jwt_authn")]),
    (JWT_REQUIREMENT, "provider_name", &[compat("filter_jwt_authn")]),
    (JWT_REQUIREMENT, "provider_and_audiences", &[compat("filter_jwt_authn")]),
    (JWT_REQUIREMENT, "requires_any", &[compat("filter_jwt_authn")]),
    (JWT_REQUIREMENT, "requires_all", &[compat("filter_jwt_authn")]),
    (JWT_REQUIREMENT, "allow_missing_or_failed", &[compat("filter_jwt_authn")]),
    (JWT_REQUIREMENT, "allow_missing", &[compat("filter_jwt_authn")]),
    (
        "envoy.extensions.filters.http.jwt_authn.v3.ProviderWithAudiences",
        "provider_name",
        &[compat("filter_jwt_authn")],
    ),
    ("envoy.extensions.filters.http.jwt_authn.v3.ProviderWithAudiences", "audiences", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementOrList", "requirements", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementAndList", "requirements", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig", "disabled", &[compat("filter_jwt_authn")]),
    ("envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig", "requirement_name", &[compat("filter_jwt_authn")]),
    // --- extensions::filters::listener::SUPPORTED_FIELDS
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "enable_ja3_fingerprinting",
        &[compat("tls_inspector_fingerprints")],
    ),
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "enable_ja4_fingerprinting",
        &[compat("tls_inspector_fingerprints")],
    ),
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "initial_read_buffer_size",
        &[compat("tls_inspector_limits"), test(CONFIG_ERRORS_IT, "tls_inspector_sizes_out_of_range")],
    ),
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "close_connection_on_client_hello_parsing_errors",
        &[compat("tls_inspector_limits")],
    ),
    (
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "max_client_hello_size",
        &[compat("tls_inspector_limits"), test(CONFIG_ERRORS_IT, "tls_inspector_sizes_out_of_range")],
    ),
    (
        "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        "allow_requests_without_proxy_protocol",
        &[compat("listener_proxy_protocol_http")],
    ),
    (
        "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        "stat_prefix",
        &[compat("listener_chain_match")],
    ),
    ("envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol", "rules", &[compat("tcp_proxy_access_log")]),
    (
        "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        "disallowed_versions",
        &[compat("listener_proxy_protocol_versions")],
    ),
    (
        "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
        "pass_through_tlvs",
        &[compat("proxy_protocol_pass_through_tlvs"), test(UPSTREAM_IT, PP_TLVS_IT)],
    ),
    (PP_RULE, "tlv_type", &[compat("tcp_proxy_access_log")]),
    (PP_RULE, "on_tlv_present", &[compat("tcp_proxy_access_log")]),
    (PP_PAIR, "metadata_namespace", &[compat("tcp_proxy_access_log")]),
    (PP_PAIR, "key", &[compat("tcp_proxy_access_log")]),
    ("envoy.config.core.v3.TransportSocket", "typed_config", &[test(TLS_IT, TLS_ERRORS)]),
    (DOWNSTREAM_TLS, "common_tls_context", &[test(TLS_IT, TLS_PARAMS)]),
    (DOWNSTREAM_TLS, "require_client_certificate", &[test(TLS_IT, TLS_MTLS), compat("tls_termination")]),
    (DOWNSTREAM_TLS, "disable_stateless_session_resumption", &[test(TLS_IT, TLS_RESUMPTION)]),
    (DOWNSTREAM_TLS, "disable_stateful_session_resumption", &[test(TLS_IT, TLS_RESUMPTION)]),
    (DOWNSTREAM_TLS, "session_ticket_keys", &[test(TLS_IT, TLS_TICKET_KEYS)]),
    (DOWNSTREAM_TLS, "session_timeout", &[test(TLS_IT, TLS_TICKET_KEYS), test(TICKETS_RS, TICKETS_EXPIRE)]),
    (DOWNSTREAM_TLS, "ocsp_staple_policy", &[test(TLS_IT, TLS_OCSP)]),
    (DOWNSTREAM_TLS, "session_ticket_keys_sds_secret_config", &[test(TLS_IT, TLS_TICKET_SECRETS)]),
    (UPSTREAM_TLS, "common_tls_context", &[test(TLS_IT, TLS_UPSTREAM)]),
    (UPSTREAM_TLS, "sni", &[test(TLS_IT, TLS_UPSTREAM), compat("tls_upstream")]),
    (UPSTREAM_TLS, "max_session_keys", &[test(TLS_IT, TLS_UPSTREAM_RESUMPTION), compat("tls_upstream_resumption")]),
    (COMMON_TLS, "tls_params", &[test(TLS_IT, TLS_PARAMS)]),
    (
        COMMON_TLS,
        "tls_certificates",
        &[
            test(TLS_IT, TLS_PARAMS),
            test(TLS_IT, "several_tls_certificates_are_chosen_by_sni"),
            compat("tls_termination"),
        ],
    ),
    (COMMON_TLS, "validation_context", &[test(TLS_IT, TLS_MTLS), compat("tls_upstream")]),
    (COMMON_TLS, "alpn_protocols", &[test(TLS_IT, "alpn_h2_serves_http2_and_http1_stays_http1")]),
    (COMMON_TLS, "tls_certificate_sds_secret_configs", &[test(SDS_IT, SDS_STATIC), compat("tls_secrets")]),
    (COMMON_TLS, "validation_context_sds_secret_config", &[test(SDS_IT, SDS_STATIC_CA), test(SDS_IT, SDS_UPSTREAM)]),
    (COMMON_TLS, "combined_validation_context", &[test(SDS_IT, SDS_COMBINED)]),
    (COMBINED_VC, "default_validation_context", &[test(SDS_IT, SDS_COMBINED)]),
    (COMBINED_VC, "validation_context_sds_secret_config", &[test(SDS_IT, SDS_COMBINED)]),
    (SDS_CONFIG, "name", &[test(SDS_IT, SDS_STATIC), compat("tls_secrets")]),
    (
        SDS_CONFIG,
        "sds_config",
        &[test(SDS_IT, SDS_UPSTREAM), test(SDS_XDS_IT, SDS_ADS), test(SDS_XDS_IT, SDS_OWN_STREAM), compat("xds_sds")],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys", "keys", &[test(TLS_IT, TLS_TICKET_KEYS)]),
    (SECRET_MSG, "name", &[test(SDS_IT, SDS_STATIC), compat("tls_secrets")]),
    (SECRET_MSG, "tls_certificate", &[test(SDS_IT, SDS_STATIC), compat("tls_secrets")]),
    (SECRET_MSG, "validation_context", &[test(SDS_IT, SDS_STATIC_CA), test(SDS_IT, SDS_UPSTREAM)]),
    (SECRET_MSG, "session_ticket_keys", &[test(TLS_IT, TLS_TICKET_SECRETS)]),
    (TLS_PARAMS_MSG, "tls_minimum_protocol_version", &[test(TLS_IT, TLS_PARAMS)]),
    (TLS_PARAMS_MSG, "tls_maximum_protocol_version", &[test(TLS_IT, TLS_PARAMS)]),
    (TLS_PARAMS_MSG, "cipher_suites", &[test(TLS_IT, TLS_PARAMS)]),
    (TLS_PARAMS_MSG, "ecdh_curves", &[test(TLS_IT, "ecdh_curves_choose_the_key_exchange")]),
    ("envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "certificate_chain", &[test(TLS_IT, TLS_PARAMS)]),
    ("envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "private_key", &[test(TLS_IT, TLS_PARAMS)]),
    ("envoy.extensions.transport_sockets.tls.v3.TlsCertificate", "ocsp_staple", &[test(TLS_IT, TLS_OCSP)]),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "trusted_ca",
        &[test(TLS_IT, TLS_MTLS), compat("tls_upstream")],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "match_typed_subject_alt_names",
        &[compat("tls_subject_alt_names")],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "match_subject_alt_names",
        &[compat("tls_subject_alt_names")],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "verify_certificate_hash",
        &[test(TLS_IT, TLS_PINS)],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "verify_certificate_spki",
        &[test(TLS_IT, TLS_PINS)],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "crl",
        &[test(TLS_IT, TLS_CRL), compat("tls_crl")],
    ),
    (
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "only_verify_leaf_cert_crl",
        &[test(TLS_IT, TLS_CRL), compat("tls_crl")],
    ),
    ("envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", "san_type", &[compat("tls_subject_alt_names")]),
    ("envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", "matcher", &[compat("tls_subject_alt_names")]),
    (UPSTREAM_PP, "config", &[compat("upstream_proxy_protocol"), test(UPSTREAM_IT, UPSTREAM_PP_IT)]),
    (UPSTREAM_PP, "transport_socket", &[compat("upstream_proxy_protocol"), test(UPSTREAM_IT, UPSTREAM_PP_IT)]),
    ("envoy.config.core.v3.ProxyProtocolConfig", "version", &[compat("upstream_proxy_protocol")]),
    ("envoy.config.core.v3.ProxyProtocolConfig", "added_tlvs", &[compat("upstream_proxy_protocol")]),
    (
        "envoy.config.core.v3.ProxyProtocolConfig",
        "pass_through_tlvs",
        &[compat("proxy_protocol_pass_through_tlvs"), test(UPSTREAM_IT, PP_TLVS_IT)],
    ),
    ("envoy.config.core.v3.ProxyProtocolPassThroughTLVs", "match_type", &[compat("proxy_protocol_pass_through_tlvs")]),
    ("envoy.config.core.v3.ProxyProtocolPassThroughTLVs", "tlv_type", &[compat("proxy_protocol_pass_through_tlvs")]),
    ("envoy.config.core.v3.TlvEntry", "type", &[compat("upstream_proxy_protocol")]),
    ("envoy.config.core.v3.TlvEntry", "value", &[compat("upstream_proxy_protocol")]),
    (ZIPKIN, "collector_cluster", &[compat("tracing_zipkin"), test(TRACING_IT, TRACING_REFUSED)]),
    (ZIPKIN, "collector_endpoint", &[test(TRACING_IT, TRACING_SPANS)]),
    (ZIPKIN, "trace_id_128bit", &[compat("tracing_zipkin")]),
    (ZIPKIN, "shared_span_context", &[compat("tracing_zipkin")]),
    (ZIPKIN, "collector_endpoint_version", &[test(TRACING_IT, TRACING_REFUSED)]),
    (ZIPKIN, "collector_hostname", &[test(TRACING_IT, TRACING_SPANS)]),
    (
        "envoy.config.trace.v3.OpenTelemetryConfig",
        "grpc_service",
        &[test(TRACING_IT, OTEL_EXPORT), compat("tracing_opentelemetry")],
    ),
    ("envoy.config.trace.v3.OpenTelemetryConfig", "service_name", &[test(TRACING_IT, OTEL_EXPORT)]),
    (SKYWALKING, "grpc_service", &[test(SKYWALKING_IT, SKYWALKING_REFUSED)]),
    (SKYWALKING, "client_config", &[test(SKYWALKING_IT, SKYWALKING_SEGMENTS)]),
    (SKYWALKING_CLIENT, "service_name", &[test(SKYWALKING_IT, SKYWALKING_SEGMENTS)]),
    (SKYWALKING_CLIENT, "instance_name", &[test(SKYWALKING_IT, SKYWALKING_SEGMENTS)]),
    (SKYWALKING_CLIENT, "backend_token", &[test(SKYWALKING_IT, SKYWALKING_SEGMENTS)]),
    (SKYWALKING_CLIENT, "max_cache_size", &[test(SKYWALKING_IT, "an_unreachable_collector_costs_no_request")]),
    (DATADOG, "collector_cluster", &[compat("tracing_datadog"), test(DATADOG_IT, DATADOG_REFUSED)]),
    (DATADOG, "service_name", &[test(DATADOG_IT, DATADOG_SPANS), test(DATADOG_IT, DATADOG_REFUSED)]),
    (DATADOG, "collector_hostname", &[test(DATADOG_IT, DATADOG_SPANS)]),
    (OTEL_SINK_CONFIG, "grpc_service", &[test(OTEL_SINK_IT, OTEL_SINK)]),
    (OTEL_SINK_CONFIG, "resource_detectors", &[test(OTEL_SINK_IT, OTEL_SINK), test(OTEL_SINK_IT, OTEL_SINK_ENV)]),
    (OTEL_SINK_CONFIG, "report_counters_as_deltas", &[test(OTEL_SINK_IT, OTEL_SINK_DELTAS)]),
    (OTEL_SINK_CONFIG, "report_histograms_as_deltas", &[test(OTEL_SINK_IT, OTEL_SINK_DELTAS)]),
    (OTEL_SINK_CONFIG, "emit_tags_as_attributes", &[test(OTEL_SINK_IT, OTEL_SINK_DELTAS)]),
    (OTEL_SINK_CONFIG, "use_tag_extracted_name", &[test(OTEL_SINK_IT, OTEL_SINK_DELTAS)]),
    (OTEL_SINK_CONFIG, "prefix", &[test(OTEL_SINK_IT, OTEL_SINK_DELTAS)]),
    (
        "envoy.extensions.tracers.opentelemetry.resource_detectors.v3.StaticConfigResourceDetectorConfig",
        "attributes",
        &[test(OTEL_SINK_IT, OTEL_SINK), test(OTEL_SINK_IT, OTEL_SINK_ENV)],
    ),
    (MS_CONFIG, "grpc_service", &[test(MS_IT, MS_LABELS)]),
    (MS_CONFIG, "transport_api_version", &[test(MS_IT, MS_REFUSED)]),
    (MS_CONFIG, "report_counters_as_deltas", &[test(MS_IT, MS_DELTAS)]),
    (MS_CONFIG, "emit_tags_as_labels", &[test(MS_IT, MS_LABELS)]),
    (MS_CONFIG, "histogram_emit_mode", &[test(MS_IT, MS_DELTAS)]),
];

/// `(message, field, what is wrong)`: supported fields no test shows acting as
/// Envoy's do. Each is to be resolved (the code fixed, the field refused, or moved
/// to `NO_EFFECT`); the test fails once one has evidence, so the entry goes.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[
    (
        GZIP,
        "memory_level",
        "read and range-checked, but flate2 does not expose zlib's memLevel: Courier compresses at zlib's \
         default (8), so the ratio and the compressor's memory differ from Envoy's (default 5); what the \
         client decompresses does not",
    ),
    (
        "envoy.type.matcher.v3.HttpResponseTrailerMatchInput",
        "header_name",
        "read from the response trailers as ExtensionWithMatcher's encode_trailers sees them \
         (router::matching_data), but no test yet sends a response with trailers through a matcher",
    ),
];

/// The body of `fn <name>(` in `source`, without its signature line: from the
/// line after it to the closing brace at the signature's indentation.
fn function_body<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("fn {name}(");
    let lines: Vec<&str> = source.lines().collect();
    let start = lines.iter().position(|l| l.contains(&needle))?;
    let indent: String = lines[start].chars().take_while(|c| c.is_whitespace()).collect();
    let end = lines[start + 1..].iter().position(|l| *l == format!("{indent}}}"))? + start + 1;
    let first = lines[start + 1].as_ptr() as usize - source.as_ptr() as usize;
    let last = lines[end].as_ptr() as usize - source.as_ptr() as usize;
    Some(&source[first..last])
}

#[test]
fn every_supported_field_has_evidence() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources: HashMap<String, String> = HashMap::new();
    let mut read = |rel: &str| -> Option<String> {
        if !sources.contains_key(rel) {
            let text = std::fs::read_to_string(root.join(rel)).ok()?;
            sources.insert(rel.to_string(), text);
        }
        sources.get(rel).cloned()
    };

    let supported: BTreeSet<(&str, &str)> = all_supported_fields().filter(|(_, f)| *f != "*").collect();
    let no_effect: BTreeSet<(&str, &str)> = NO_EFFECT.iter().map(|(m, f, _)| (*m, *f)).collect();
    let mut problems = Vec::new();

    let mut evidenced = BTreeSet::new();
    for (message, field, evidence) in EVIDENCE {
        if !supported.contains(&(*message, *field)) {
            problems.push(format!("stale: {message}.{field} has evidence but is not a supported field"));
        }
        if !evidenced.insert((*message, *field)) {
            problems.push(format!("{message}.{field} is listed twice in EVIDENCE"));
        }
        if evidence.is_empty() {
            problems.push(format!("{message}.{field} has an empty evidence list"));
        }
        for e in *evidence {
            match e {
                Evidence::Test(file, name) => match read(file) {
                    None => problems.push(format!("{message}.{field}: cannot read {file}")),
                    Some(source) => match function_body(&source, name) {
                        None => problems.push(format!("{message}.{field}: {file} has no `fn {name}(`")),
                        Some(body) if !body.contains(field) => {
                            problems.push(format!("{message}.{field}: `{field}` does not occur in {file} `fn {name}`"))
                        }
                        Some(_) => {}
                    },
                },
                Evidence::Compat(case) => {
                    let file = format!("tests/compat/cases/{case}.yaml");
                    match read(&file) {
                        None => problems.push(format!("{message}.{field}: no compat case {file}")),
                        Some(text) if !text.contains(field) => {
                            problems.push(format!("{message}.{field}: `{field}` does not occur in {file}"))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    let mut gaps = BTreeSet::new();
    for (message, field, why) in KNOWN_GAPS {
        assert!(!why.is_empty(), "{message}.{field}: say what is wrong");
        if !supported.contains(&(*message, *field)) {
            problems.push(format!("stale: known gap {message}.{field} is not a supported field"));
        }
        if evidenced.contains(&(*message, *field)) {
            problems.push(format!("{message}.{field} has evidence now: remove it from KNOWN_GAPS"));
        }
        if no_effect.contains(&(*message, *field)) {
            problems.push(format!("{message}.{field} is on NO_EFFECT: remove it from KNOWN_GAPS"));
        }
        gaps.insert((*message, *field));
    }
    for (message, field) in &no_effect {
        if !supported.contains(&(*message, *field)) {
            problems.push(format!("stale: NO_EFFECT names {message}.{field}, which is not supported"));
        }
    }

    for (message, field) in &supported {
        let accounted = evidenced.contains(&(*message, *field))
            || no_effect.contains(&(*message, *field))
            || gaps.contains(&(*message, *field));
        if !accounted {
            problems
                .push(format!("{message}.{field}: no test shows it acting and it is not on NO_EFFECT; add evidence"));
        }
    }

    // The table keeps the order of the supported tables, so that it reads next to them.
    let order: Vec<(&str, &str)> = {
        let mut seen = BTreeSet::new();
        all_supported_fields().filter(|(_, f)| *f != "*").filter(|k| seen.insert(*k)).collect()
    };
    let position = |k: &(&str, &str)| order.iter().position(|o| o == k).unwrap_or(usize::MAX);
    for pair in EVIDENCE.windows(2) {
        let (a, b) = ((pair[0].0, pair[0].1), (pair[1].0, pair[1].1));
        if position(&a) > position(&b) {
            problems.push(format!("EVIDENCE order: {}.{} should come before {}.{}", b.0, b.1, a.0, a.1));
        }
    }

    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
