//! Integration tests: the real `courier` binary, real sockets on 127.0.0.1.

mod harness;
mod http_util;
#[path = "../shared/grpc_collector.rs"]
mod shared_collector;
#[path = "../shared/dns_server.rs"]
mod shared_dns;
#[path = "../shared/h2_client.rs"]
mod shared_h2;
#[path = "../shared/net.rs"]
mod shared_net;
#[path = "../shared/tls_pki.rs"]
mod shared_tls;
#[path = "../shared/xds_server.rs"]
mod shared_xds;

mod access_log;
mod admin;
mod config_errors;
mod dns;
mod eds;
mod examples;
mod health_check;
mod http2_conformance;
mod http2_connection_errors;
mod http2_downstream;
mod http2_upstream;
mod http2_websocket;
mod http_codec;
mod http_filters;
mod http_options;
mod http_proxy;
mod layering;
mod lifecycle;
mod listener_path;
mod load_balancing;
mod load_stats;
mod metrics_service_sink;
mod net_helpers;
mod network_filters;
mod no_loss;
mod original_dst;
mod otel_stat_sink;
mod rds;
mod routing;
mod runtime;
mod sds;
mod skywalking;
mod stat_sinks;
mod supported_fields;
mod tcp_proxy;
mod tls;
mod tracing;
mod tracing_datadog;
mod upstream;
mod xds_config_dump;
mod xds_connection;
mod xds_delta;
mod xds_files;
mod xds_grpc;
mod xds_rds_unsubscribe;
mod xds_resource_names;
mod xds_rtds;
mod xds_sds;
mod xds_tls;
