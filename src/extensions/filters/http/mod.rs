//! HTTP filters (Envoy's `extensions/filters/http/`), run by the connection manager
//! on each request before the router:
//!
//! - `health_check` — answers health checks locally (200, or 503 while failing)
//! - `cors` — CORS preflights and response headers from per-route `CorsPolicy`
//! - `csrf` — refuses state-changing requests from another origin
//! - `ext_authz` — asks an external HTTP authorization service about each request
//! - `jwt_authn` — requires JSON Web Tokens verified against the providers' keys
//! - `fault` — injected delays and aborts
//! - `local_ratelimit` — a process-wide token bucket, per filter or per route
//! - `buffer` — buffers the whole request body before it goes upstream
//! - `compressor` — compresses response bodies the client accepts compressed (gzip)
//! - `decompressor` — inflates gzip request and response bodies as they stream
//! - `grpc_http1_bridge` — gRPC for HTTP/1.1 clients: the trailers as headers,
//!   `application/x-protobuf` bodies framed as gRPC
//! - `grpc_http1_reverse_bridge` — gRPC clients to plain HTTP/1.1 services: the
//!   frame header off and on, the status in trailers the filter adds
//! - `set_metadata` — attaches fixed values to each request's dynamic metadata
//! - `header_to_metadata` — turns header and cookie values into dynamic metadata
//! - `rbac` — allows or refuses requests by role-based access control policies
//! - `match_delegate` — `ExtensionWithMatcher`: skips a wrapped filter for the
//!   requests a generic matcher selects
//!
//! Each filter is one module exposing its `EXTENSION` (name, config type,
//! constructors) for the registry. Configs are checked against `SUPPORTED_FIELDS`
//! (through `config::supported`) before they are built, so a field Courier does not
//! act on is an error naming it. `common` holds what several filters share (the
//! supported-fields check, fractional percentages); header matchers and header
//! additions are the router's. `token_bucket` is the lock-free bucket of the rate
//! limiter.

pub mod buffer;
pub(crate) mod common;
pub mod compressor;
pub mod cors;
pub mod csrf;
pub mod decompressor;
pub mod ext_authz;
pub mod fault;
pub mod filter;
pub mod grpc_http1_bridge;
pub mod grpc_http1_reverse_bridge;
pub mod header_to_metadata;
pub mod health_check;
pub mod jwt_authn;
pub mod local_ratelimit;
pub mod match_delegate;
pub mod rbac;
pub mod router;
pub mod set_metadata;
pub mod token_bucket;

#[cfg(test)]
pub(crate) mod test_util;

use crate::extensions::HttpFilterExtension;

/// The HTTP filters Courier ships (the router excepted).
pub const HTTP_FILTERS: &[HttpFilterExtension] = &[
    health_check::EXTENSION,
    cors::EXTENSION,
    csrf::EXTENSION,
    ext_authz::EXTENSION,
    jwt_authn::EXTENSION,
    fault::EXTENSION,
    local_ratelimit::EXTENSION,
    buffer::EXTENSION,
    compressor::EXTENSION,
    decompressor::EXTENSION,
    grpc_http1_bridge::EXTENSION,
    grpc_http1_reverse_bridge::EXTENSION,
    set_metadata::EXTENSION,
    header_to_metadata::EXTENSION,
    rbac::EXTENSION,
    match_delegate::EXTENSION,
];

/// `(message full name, supported fields)` of the filters' configs, in the layout
/// of `config::supported::SUPPORTED_FIELDS`; `extensions::supported` merges it with the others.
/// The messages filters share with routes (`HeaderMatcher`, `StringMatcher`,
/// `HeaderValueOption`, ...) are built by the router's code and listed in
/// `router::ROUTE_SUPPORTED_FIELDS`. Value checks beyond presence (e.g.
/// `pass_through_mode` must be false) are made by the filters themselves.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        &[
            "stat_prefix",
            "status",
            "token_bucket",
            "filter_enabled",
            "filter_enforced",
            "request_headers_to_add_when_not_enforced",
            "response_headers_to_add",
            "local_rate_limit_per_downstream_connection",
            "enable_x_ratelimit_headers",
            "always_consume_default_token_bucket",
            "enable_retry_after_header",
        ],
    ),
    ("envoy.type.v3.HttpStatus", &["code"]),
    ("envoy.type.v3.TokenBucket", &["max_tokens", "tokens_per_fill", "fill_interval"]),
    ("envoy.config.core.v3.RuntimeFractionalPercent", &["default_value", "runtime_key"]),
    ("envoy.type.v3.FractionalPercent", &["numerator", "denominator"]),
    ("envoy.extensions.filters.http.cors.v3.Cors", &[]),
    (
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
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
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        &["delay", "abort", "upstream_cluster", "headers", "max_active_faults", "disable_downstream_cluster_stats"],
    ),
    (
        "envoy.extensions.filters.http.fault.v3.FaultAbort",
        &["http_status", "header_abort", "percentage", "response_body"],
    ),
    ("envoy.extensions.filters.http.fault.v3.FaultAbort.HeaderAbort", &[]),
    ("envoy.extensions.filters.common.fault.v3.FaultDelay", &["fixed_delay", "header_delay", "percentage"]),
    ("envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay", &[]),
    ("envoy.extensions.filters.http.health_check.v3.HealthCheck", &["pass_through_mode", "cache_time", "headers"]),
    ("envoy.extensions.filters.http.buffer.v3.Buffer", &["max_request_bytes"]),
    ("envoy.extensions.filters.http.buffer.v3.BufferPerRoute", &["disabled", "buffer"]),
];
