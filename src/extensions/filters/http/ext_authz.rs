//! `envoy.filters.http.ext_authz`: asks an external authorization service
//! whether a request may go on, and acts on its answer (Envoy's HTTP service
//! flavour; `grpc_service`, the gRPC `Authorization/Check` flavour, is refused
//! by name).
//!
//! Envoy's rules, checked against Envoy 1.40 (tests/compat `filter_ext_authz`):
//! the check is a request to `server_uri.cluster` (within `server_uri.timeout`)
//! with the original method and `path_prefix` + path, no body
//! (`content-length: 0`), the original `host`, and of the original headers
//! `authorization` and those `authorization_request.allowed_headers` matches,
//! plus `headers_to_add`, `x-envoy-internal: true` and the expected timeout.
//! A 200 lets the request go on with the service's headers that
//! `allowed_upstream_headers` matches set (and `..._to_append` appended); any
//! other status is the reply, with the service's body and headers (those
//! `allowed_client_headers` matches, when set), `UAEX` and `ext_authz_denied`.
//! No answer is `status_on_error` (403) with `ext_authz_error`, or, with
//! `failure_mode_allow`, the request goes on (marked
//! `x-envoy-auth-failure-mode-allowed: true` under `failure_mode_allow_header_add`).
//! Counted in `http.<prefix>.ext_authz.*` and the route's
//! `cluster.<name>.ext_authz.*`. A route's `ExtAuthzPerRoute` may disable it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz::Services;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz_per_route::Override;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    ExtAuthz as ExtAuthzProto, ExtAuthzPerRoute, HttpService,
};
use envoy_types::pb::envoy::r#type::matcher::v3::ListStringMatcher;
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use super::common;
use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, duration, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::headers;
use crate::http::http1::client_connection::RequestOut;
use crate::http::local_reply::LocalReply;
use crate::matcher::string_matcher::StringMatcher;
use crate::router::async_client::{self, AsyncResponse};
use crate::router::{ClusterSelector, PerRouteConfig, RouteAction};
use crate::stats::Store;
use crate::stream_info::ResponseFlag;
use crate::thread_local::Slot;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::ThreadLocalClusterManager;

pub const NAME: &str = "envoy.filters.http.ext_authz";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((PER_ROUTE_TYPE, create_per_route)),
};

/// Envoy's default check timeout (`server_uri.timeout` is required, but 0 means it).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// The most of a denial's body kept for the client.
const MAX_RESPONSE_BODY: usize = 1 << 20;

const X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
const FAILURE_MODE_ALLOWED: HeaderName = HeaderName::from_static("x-envoy-auth-failure-mode-allowed");

define_stats! {
    /// `http.<prefix>.ext_authz.*` (and the same names under the route's cluster).
    #[derive(Debug)]
    pub struct ExtAuthzStats {
        counter ok,
        counter denied,
        counter error,
        counter failure_mode_allowed,
        counter disabled,
    }
}

/// A compiled `ExtAuthz` with an `http_service`.
#[derive(Debug)]
struct ExtAuthzConfig {
    cluster: String,
    timeout: Duration,
    path_prefix: String,
    allowed_headers: Vec<StringMatcher>,
    headers_to_add: Vec<(HeaderName, HeaderValue)>,
    allowed_upstream_headers: Vec<StringMatcher>,
    allowed_upstream_headers_to_append: Vec<StringMatcher>,
    /// `None`: every header of a denial goes to the client.
    allowed_client_headers: Option<Vec<StringMatcher>>,
    failure_mode_allow: bool,
    failure_mode_allow_header_add: bool,
    status_on_error: StatusCode,
    stats: ExtAuthzStats,
    store: Arc<Store>,
    clusters: Slot<ThreadLocalClusterManager>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

fn matchers(list: Option<&ListStringMatcher>, path: &FieldPath) -> Result<Vec<StringMatcher>, ConfigError> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let mut at = path.child("patterns");
    list.patterns
        .iter()
        .enumerate()
        .map(|(i, m)| {
            at.push_index(i);
            let compiled = StringMatcher::from_proto(m, &at);
            at.pop();
            compiled
        })
        .collect()
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: ExtAuthzProto = decode_any(any, path)?;
    let service = match &c.services {
        Some(Services::HttpService(h)) => h,
        // The supported-fields check refused `grpc_service`.
        _ => return Err(path.error("one of grpc_service or http_service must be set")),
    };
    let sp = path.child("http_service");
    let HttpService { server_uri, path_prefix, authorization_request, authorization_response, .. } = service;
    let Some(uri) = server_uri else { return Err(sp.field_error("server_uri", "value is required")) };
    let cluster = match &uri.http_upstream_type {
        Some(HttpUpstreamType::Cluster(c)) if !c.is_empty() => c.clone(),
        _ => return Err(sp.child("server_uri").field_error("cluster", "value length must be at least 1 characters")),
    };
    let timeout = uri.timeout.as_ref().map(duration).filter(|t| !t.is_zero()).unwrap_or(DEFAULT_TIMEOUT);
    let request = authorization_request.clone().unwrap_or_default();
    // Deprecated for the filter's own `allowed_headers` (refused here), which
    // Envoy 1.40 reads in the same way; the examples still write this one.
    let rp = sp.child("authorization_request");
    #[allow(deprecated)]
    let allowed_headers = matchers(request.allowed_headers.as_ref(), &rp.child("allowed_headers"))?;
    let mut headers_to_add = Vec::new();
    for (i, h) in request.headers_to_add.iter().enumerate() {
        let mut at = rp.child("headers_to_add");
        at.push_index(i);
        let name = HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| at.field_error("key", "not a header name"))?;
        let value = HeaderValue::from_str(&h.value).map_err(|_| at.field_error("value", "not a header value"))?;
        headers_to_add.push((name, value));
    }
    let response = authorization_response.clone().unwrap_or_default();
    let ap = sp.child("authorization_response");
    let status_on_error = match c.status_on_error.as_ref().map(|s| s.code) {
        None | Some(0) => StatusCode::FORBIDDEN,
        Some(code) => StatusCode::from_u16(code as u16)
            .map_err(|_| path.child("status_on_error").field_error("code", "not an HTTP status"))?,
    };
    Ok(Arc::new(ExtAuthzFilterFactory {
        config: Arc::new(ExtAuthzConfig {
            cluster,
            timeout,
            path_prefix: path_prefix.clone(),
            allowed_headers,
            headers_to_add,
            allowed_upstream_headers: matchers(
                response.allowed_upstream_headers.as_ref(),
                &ap.child("allowed_upstream_headers"),
            )?,
            allowed_upstream_headers_to_append: matchers(
                response.allowed_upstream_headers_to_append.as_ref(),
                &ap.child("allowed_upstream_headers_to_append"),
            )?,
            allowed_client_headers: match &response.allowed_client_headers {
                Some(list) => Some(matchers(Some(list), &ap.child("allowed_client_headers"))?),
                None => None,
            },
            failure_mode_allow: c.failure_mode_allow,
            failure_mode_allow_header_add: c.failure_mode_allow_header_add,
            status_on_error,
            stats: ExtAuthzStats::new(ctx.store, &format!("http.{}.ext_authz.", ctx.hcm_stat_prefix)),
            store: ctx.store.clone(),
            clusters: ctx.clusters.clone(),
            name: ctx.filter_name.into(),
        }),
    }))
}

/// A route's `ExtAuthzPerRoute`: only `disabled` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExtAuthzRouteConfig {
    disabled: bool,
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let p: ExtAuthzPerRoute = decode_any(any, path)?;
    match p.r#override {
        Some(Override::Disabled(disabled)) => Ok(Arc::new(ExtAuthzRouteConfig { disabled })),
        // The supported-fields check refused `check_settings`.
        _ => Err(path.error("one of disabled or check_settings must be set")),
    }
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct ExtAuthzFilterFactory {
    config: Arc<ExtAuthzConfig>,
}

impl StreamFilterFactory for ExtAuthzFilterFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(ExtAuthzFilter { config: self.config.clone() })
    }
}

struct ExtAuthzFilter {
    config: Arc<ExtAuthzConfig>,
}

/// What became of one check.
enum Decision {
    Allowed(HeaderMap),
    Denied(LocalReply),
    Error,
}

impl ExtAuthzConfig {
    /// The check request's headers: the original `host`, `authorization` and the
    /// allowed headers, then `headers_to_add`.
    fn check_headers(&self, request: &http::request::Parts) -> HeaderMap {
        let mut out = HeaderMap::new();
        let host = request
            .headers
            .get(http::header::HOST)
            .cloned()
            .or_else(|| request.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        if let Some(host) = host {
            out.insert(http::header::HOST, host);
        }
        for (name, value) in &request.headers {
            let wanted =
                *name == http::header::AUTHORIZATION || self.allowed_headers.iter().any(|m| m.matches(name.as_str()));
            if wanted && *name != http::header::HOST && *name != http::header::CONTENT_LENGTH {
                out.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.headers_to_add {
            out.insert(name.clone(), value.clone());
        }
        out.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        out.insert(X_ENVOY_INTERNAL, HeaderValue::from_static("true"));
        out.insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, headers::number_value(self.timeout.as_millis() as u64));
        out
    }

    /// Asks the service about a request with `method`, `target` and `check_headers`.
    async fn check(&self, method: Method, target: String, check_headers: HeaderMap) -> Decision {
        let Some(cluster) = self.clusters.get().and_then(|cm| cm.get(&self.cluster)) else { return Decision::Error };
        let request = RequestOut { method: &method, target: &target, headers: &check_headers, overrides: &[] };
        let protocol = Protocol::from(cluster.info.protocol_for(http::Version::HTTP_11));
        let started = Instant::now();
        let sent =
            async_client::send(&cluster, &request, Bytes::new(), protocol, Some(self.timeout), MAX_RESPONSE_BODY);
        match sent.await {
            Ok(r) if r.parts.status == StatusCode::OK => Decision::Allowed(r.parts.headers),
            Ok(r) => Decision::Denied(self.denial(r, started.elapsed())),
            Err(_) => Decision::Error,
        }
    }

    /// The service's answer as the reply: its status, body and (allowed) headers.
    fn denial(&self, response: AsyncResponse, elapsed: Duration) -> LocalReply {
        let AsyncResponse { parts, body, .. } = response;
        let mut reply = LocalReply::new(parts.status, body, "ext_authz_denied")
            .with_flag(ResponseFlag::UnauthorizedExternalService);
        let mut previous: Option<HeaderName> = None;
        for (name, value) in parts.headers {
            let Some(name) = name.or(previous.take()) else { continue };
            previous = Some(name.clone());
            let framing = [http::header::CONTENT_LENGTH, http::header::TRANSFER_ENCODING, http::header::CONNECTION];
            // The connection manager writes its own date, server and framing.
            if framing.contains(&name) || name == http::header::DATE || name == http::header::SERVER {
                continue;
            }
            let allowed = match &self.allowed_client_headers {
                None => name != http::header::HOST,
                Some(list) => {
                    [http::header::WWW_AUTHENTICATE, http::header::LOCATION].contains(&name)
                        || list.iter().any(|m| m.matches(name.as_str()))
                }
            };
            if allowed {
                reply.headers.append(name, value);
            }
        }
        // Envoy's async client went through a router, which timed the service: the
        // time is one of the service's headers, allowed or not as they are.
        let timed = headers::X_ENVOY_UPSTREAM_SERVICE_TIME;
        if self.allowed_client_headers.as_ref().is_none_or(|list| list.iter().any(|m| m.matches(timed.as_str()))) {
            reply.headers.insert(timed, headers::number_value(elapsed.as_millis() as u64));
        }
        reply
    }

    /// The allowed service headers onto the request.
    fn apply(&self, service: &HeaderMap, request: &mut http::request::Parts) {
        for (name, value) in service {
            if self.allowed_upstream_headers.iter().any(|m| m.matches(name.as_str())) {
                request.headers.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in service {
            if self.allowed_upstream_headers_to_append.iter().any(|m| m.matches(name.as_str())) {
                request.headers.append(name.clone(), value.clone());
            }
        }
    }

    /// Counts under `http.<prefix>.ext_authz.` and the route's cluster.
    fn count(&self, route_cluster: Option<&str>, stat: fn(&ExtAuthzStats) -> &crate::stats::Counter, name: &str) {
        stat(&self.stats).inc();
        if let Some(cluster) = route_cluster {
            self.store.counter(&format!("cluster.{cluster}.ext_authz.{name}")).inc();
        }
    }
}

impl StreamFilter for ExtAuthzFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let config = self.config.clone();
        let route = cx.route;
        if route.and_then(|r| r.per_filter_config::<ExtAuthzRouteConfig>(&config.name)).is_some_and(|c| c.disabled) {
            return FilterStatus::Continue;
        }
        // The route's cluster, when it names one (a weighted pick is the router's).
        let route_cluster = route.and_then(|r| match &r.action {
            RouteAction::Forward(f) if !matches!(f.cluster, ClusterSelector::Weighted { .. }) => {
                f.cluster_name(&parts.headers, 0).map(str::to_owned)
            }
            _ => None,
        });
        let target = format!("{}{}", config.path_prefix, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        let check_headers = config.check_headers(parts);
        let method = parts.method.clone();
        FilterStatus::Decide(Box::pin(async move {
            let rc = route_cluster.as_deref();
            match config.check(method, target, check_headers).await {
                Decision::Allowed(service) => {
                    config.count(rc, |s| &s.ok, "ok");
                    FilterStatus::ContinueWith(Box::new(move |request| config.apply(&service, request)))
                }
                Decision::Denied(reply) => {
                    config.count(rc, |s| &s.denied, "denied");
                    FilterStatus::LocalReply(reply)
                }
                Decision::Error => {
                    config.count(rc, |s| &s.error, "error");
                    if !config.failure_mode_allow {
                        let reply = LocalReply::new(config.status_on_error, "", "ext_authz_error")
                            .with_flag(ResponseFlag::UnauthorizedExternalService);
                        return FilterStatus::LocalReply(reply);
                    }
                    config.count(rc, |s| &s.failure_mode_allowed, "failure_mode_allowed");
                    if !config.failure_mode_allow_header_add {
                        return FilterStatus::Continue;
                    }
                    FilterStatus::ContinueWith(Box::new(|request| {
                        request.headers.insert(FAILURE_MODE_ALLOWED, HeaderValue::from_static("true"));
                    }))
                }
            }
        }))
    }
}

/// `(message full name, supported fields)` of the filter's configs.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        CONFIG_TYPE,
        &[
            "http_service",
            "transport_api_version",
            "failure_mode_allow",
            "failure_mode_allow_header_add",
            "status_on_error",
        ],
    ),
    (
        "envoy.extensions.filters.http.ext_authz.v3.HttpService",
        &["server_uri", "path_prefix", "authorization_request", "authorization_response"],
    ),
    ("envoy.config.core.v3.HttpUri", &["uri", "cluster", "timeout"]),
    ("envoy.extensions.filters.http.ext_authz.v3.AuthorizationRequest", &["allowed_headers", "headers_to_add"]),
    (
        "envoy.extensions.filters.http.ext_authz.v3.AuthorizationResponse",
        &["allowed_upstream_headers", "allowed_upstream_headers_to_append", "allowed_client_headers"],
    ),
    ("envoy.type.matcher.v3.ListStringMatcher", &["patterns"]),
    (PER_ROUTE_TYPE, &["disabled"]),
];
