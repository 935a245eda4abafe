//! `envoy.filters.http.ext_authz`: asks an external authorization service
//! whether a request may go on, and acts on its answer.
//!
//! The service is an HTTP server (`http_service`) or a gRPC
//! `envoy.service.auth.v3.Authorization/Check` service (`grpc_service`); each
//! flavour builds its check and reads its answer into a `Decision`, and this
//! module acts on it as Envoy's filter does (checked against Envoy 1.40: tests/compat
//! `filter_ext_authz`, `filter_ext_authz_grpc`). Allowed: the request goes on
//! with the headers the service set, appended or removed, and the response gets
//! those it asked for. Denied: the service's reply (status, headers, body),
//! flagged `UAEX` with `ext_authz_denied`. No answer: `status_on_error` (403)
//! with `ext_authz_error`, or, with `failure_mode_allow`, the request goes on
//! (marked `x-envoy-auth-failure-mode-allowed: true` under
//! `failure_mode_allow_header_add`). Counted in `http.<prefix>.ext_authz.*` and
//! the route's `cluster.<name>.ext_authz.*`. A route's `ExtAuthzPerRoute` may
//! disable the check.

mod grpc_service;
mod http_service;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz::Services;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz_per_route::Override;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{ExtAuthz as ExtAuthzProto, ExtAuthzPerRoute};
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use super::common;
use super::filter::{EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::LocalReply;
use crate::network::tls::{url_encoded_pem, DownstreamTlsInfo};
use crate::router::{ClusterSelector, PerRouteConfig, RouteAction};
use crate::stats::{Counter, Store};
use crate::stream_info::ResponseFlag;
use crate::thread_local::Slot;
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

/// What a check needs of the request, taken when its headers are decoded.
struct CheckedRequest {
    method: Method,
    /// Path and query, as sent.
    path: String,
    headers: HeaderMap,
    /// `host` (or `:authority`).
    host: String,
    scheme: String,
    protocol: &'static str,
    remote: SocketAddr,
    local: SocketAddr,
    /// Over TLS, the peers' principals as Envoy names them: a certificate's
    /// first URI SAN, else its first DNS SAN, else its subject (the client's;
    /// this side's).
    source_principal: String,
    destination_principal: String,
    /// The client's certificate, URL-encoded PEM, with `include_peer_certificate`.
    source_certificate: String,
    start_time: SystemTime,
}

impl CheckedRequest {
    /// The peers' TLS identities of a request (`tls`: its connection's).
    fn principals(&mut self, tls: Option<&DownstreamTlsInfo>, include_certificate: bool) {
        let Some(tls) = tls else { return };
        if let Some(peer) = &tls.peer {
            let san = peer.uri_sans.first().or(peer.dns_sans.first());
            self.source_principal = san.cloned().unwrap_or_else(|| peer.subject.clone());
        }
        self.destination_principal = tls.local_principal().unwrap_or_default().to_string();
        if include_certificate {
            if let Some(own) = tls.peer_certificates.first() {
                self.source_certificate = url_encoded_pem([own.as_ref()]);
            }
        }
    }
}

/// What the service asked of an allowed request and its response.
#[derive(Debug, Default)]
struct Allowed {
    set: Vec<(HeaderName, HeaderValue)>,
    append: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
    response: Vec<(HeaderName, HeaderValue)>,
}

impl Allowed {
    fn apply(&self, request: &mut http::request::Parts) {
        for (name, value) in &self.set {
            request.headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.append {
            request.headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            request.headers.remove(name);
        }
    }
}

/// What became of one check.
enum Decision {
    Allowed(Allowed),
    Denied(LocalReply),
    Error,
}

/// The service a filter asks.
#[derive(Debug)]
enum Service {
    Http(http_service::HttpService),
    Grpc(grpc_service::GrpcService),
}

/// A compiled `ExtAuthz`.
#[derive(Debug)]
struct ExtAuthzConfig {
    service: Service,
    failure_mode_allow: bool,
    failure_mode_allow_header_add: bool,
    /// The gRPC check carries the client's certificate (an HTTP check has no
    /// place for it, in Envoy too).
    include_peer_certificate: bool,
    status_on_error: StatusCode,
    stats: ExtAuthzStats,
    store: Arc<Store>,
    clusters: Slot<ThreadLocalClusterManager>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: ExtAuthzProto = decode_any(any, path)?;
    let service = match &c.services {
        Some(Services::HttpService(h)) => {
            Service::Http(http_service::HttpService::from_proto(h, &path.child("http_service"))?)
        }
        Some(Services::GrpcService(g)) => {
            Service::Grpc(grpc_service::GrpcService::from_proto(g, &path.child("grpc_service"))?)
        }
        None => return Err(path.error("one of grpc_service or http_service must be set")),
    };
    let status_on_error = match c.status_on_error.as_ref().map(|s| s.code) {
        None | Some(0) => StatusCode::FORBIDDEN,
        Some(code) => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| path.child("status_on_error").field_error("code", "not an HTTP status"))?,
    };
    Ok(Arc::new(ExtAuthzFilterFactory {
        config: Arc::new(ExtAuthzConfig {
            service,
            failure_mode_allow: c.failure_mode_allow,
            failure_mode_allow_header_add: c.failure_mode_allow_header_add,
            include_peer_certificate: c.include_peer_certificate,
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
        Box::new(ExtAuthzFilter { config: self.config.clone(), response_headers: Rc::default() })
    }
}

struct ExtAuthzFilter {
    config: Arc<ExtAuthzConfig>,
    /// What an allowed check asked to add to the response (set by the check's future).
    response_headers: Rc<RefCell<Vec<(HeaderName, HeaderValue)>>>,
}

impl ExtAuthzConfig {
    async fn check(&self, request: CheckedRequest) -> Decision {
        match &self.service {
            Service::Http(s) => s.check(&self.clusters, request).await,
            Service::Grpc(s) => s.check(&self.clusters, request).await,
        }
    }

    /// Counts under `http.<prefix>.ext_authz.` and the route's cluster.
    fn count(&self, route_cluster: Option<&str>, stat: fn(&ExtAuthzStats) -> &Counter, name: &str) {
        stat(&self.stats).inc();
        if let Some(cluster) = route_cluster {
            self.store.counter(&format!("cluster.{cluster}.ext_authz.{name}")).inc();
        }
    }

    /// What the filter does when no answer came.
    fn on_error(&self, route_cluster: Option<&str>) -> FilterStatus {
        self.count(route_cluster, |s| &s.error, "error");
        if !self.failure_mode_allow {
            let reply = LocalReply::new(self.status_on_error, "", "ext_authz_error")
                .with_flag(ResponseFlag::UnauthorizedExternalService);
            return FilterStatus::LocalReply(reply);
        }
        self.count(route_cluster, |s| &s.failure_mode_allowed, "failure_mode_allowed");
        if !self.failure_mode_allow_header_add {
            return FilterStatus::Continue;
        }
        FilterStatus::ContinueWith(Box::new(|request| {
            request.headers.insert(FAILURE_MODE_ALLOWED, HeaderValue::from_static("true"));
        }))
    }
}

/// Envoy's `:scheme` of a request: what `x-forwarded-proto` (set by the connection
/// manager before any filter) says.
fn scheme(parts: &http::request::Parts) -> String {
    let forwarded = parts.headers.get(crate::http::headers::X_FORWARDED_PROTO).and_then(|v| v.to_str().ok());
    forwarded.or(parts.uri.scheme_str()).unwrap_or("http").to_string()
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
        let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
        let mut request = CheckedRequest {
            method: parts.method.clone(),
            path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            headers: parts.headers.clone(),
            host: host.or(parts.uri.authority().map(|a| a.as_str())).unwrap_or_default().to_string(),
            scheme: scheme(parts),
            protocol: cx.info.protocol,
            remote: cx.info.downstream_remote,
            local: cx.info.downstream_local,
            source_principal: String::new(),
            destination_principal: String::new(),
            source_certificate: String::new(),
            start_time: cx.info.start_time,
        };
        request.principals(cx.info.downstream_tls.as_deref(), config.include_peer_certificate);
        let response_headers = self.response_headers.clone();
        FilterStatus::Decide(Box::pin(async move {
            let rc = route_cluster.as_deref();
            match config.check(request).await {
                Decision::Allowed(allowed) => {
                    config.count(rc, |s| &s.ok, "ok");
                    response_headers.borrow_mut().extend(allowed.response.iter().cloned());
                    FilterStatus::ContinueWith(Box::new(move |request| allowed.apply(request)))
                }
                Decision::Denied(reply) => {
                    config.count(rc, |s| &s.denied, "denied");
                    FilterStatus::LocalReply(reply)
                }
                Decision::Error => config.on_error(rc),
            }
        }))
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        _end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        for (name, value) in self.response_headers.borrow_mut().drain(..) {
            parts.headers.append(name, value);
        }
        EncodeStatus::Continue
    }
}

/// `(message full name, supported fields)` of the filter's configs.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        CONFIG_TYPE,
        &[
            "http_service",
            "grpc_service",
            "transport_api_version",
            "failure_mode_allow",
            "failure_mode_allow_header_add",
            "status_on_error",
            "include_peer_certificate",
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
