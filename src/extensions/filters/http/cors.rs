//! `envoy.filters.http.cors`: Cross-Origin Resource Sharing for browsers, driven by
//! the `CorsPolicy` a route, its virtual host and the route configuration set in
//! `typed_per_filter_config`; without a policy the filter does nothing. As Envoy,
//! the levels are merged field by field: each field comes from the most specific
//! policy that sets it (`filter_enabled` and `shadow_enabled` from the most specific
//! policy, set or not).
//!
//! A request carrying `Origin` is a CORS request. Its origin is allowed when one of
//! `allow_origin_string_match` matches it, or matches the literal `*` (so
//! `exact: "*"` allows every origin, as in Envoy); the answer always echoes the
//! request's origin, never `*`.
//!
//! - A *preflight* (`OPTIONS` with `Origin` and a non-empty
//!   `Access-Control-Request-Method`) from an allowed origin is answered locally:
//!   200, no body, `access-control-allow-origin`, `-allow-credentials` (when
//!   `allow_credentials`), `-allow-methods` (`*` echoes the requested method),
//!   `-allow-headers` (`*` echoes `access-control-request-headers`), `-max-age`
//!   (when set), `-allow-private-network` (when `allow_private_network_access` and
//!   the request asked with `access-control-request-private-network: true`), and
//!   `-expose-headers`; details `cors_response`. A preflight from another origin goes
//!   upstream, or with `forward_not_matching_preflights: false` gets the same 200
//!   without `access-control-allow-origin`.
//! - Any other CORS request from an allowed origin goes on, and its response gets
//!   `access-control-allow-origin`, `-allow-credentials` and `-expose-headers`.
//!
//! Routes that answer themselves (`direct_response`, `redirect`) have no route entry
//! in Envoy, so no policy applies to them: their responses get no CORS headers and
//! their origins are not counted.
//!
//! The deprecated `VirtualHost.cors` is still read by Envoy 1.40: it is the policy
//! of a route none of whose levels sets one in `typed_per_filter_config`.
//!
//! `filter_enabled` (100% when absent) switches the policy on per request;
//! `shadow_enabled` (0% when absent) only counts origins when it is off.
//! Stats: `http.<stat_prefix>.cors.origin_valid` and `.origin_invalid`, counted for
//! every CORS request the policy is enabled or shadowed for.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::cors_policy::EnabledSpecifier;
use envoy_types::pb::envoy::config::route::v3::CorsPolicy as RouteCorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::google::protobuf::Any;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::common::{self, Percent};
use super::filter::{EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::LocalReply;
use crate::matcher::StringMatcher;
use crate::router::PerRouteConfig;
use crate::router::RouteAction;
use crate::runtime::RuntimeFraction;
use crate::stats::Store;

pub const NAME: &str = "envoy.filters.http.cors";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.cors.v3.Cors";
const POLICY_TYPE: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";

pub const EXTENSION: HttpFilterExtension =
    HttpFilterExtension { name: NAME, config_type: CONFIG_TYPE, create, per_route: Some((POLICY_TYPE, create_policy)) };

const REQUEST_PRIVATE_NETWORK: &str = "access-control-request-private-network";
const ALLOW_PRIVATE_NETWORK: &str = "access-control-allow-private-network";
const DETAILS: &str = "cors_response";

define_stats! {
    /// `http.<stat_prefix>.cors.*`
    #[derive(Debug)]
    pub struct CorsStats {
        counter origin_valid,
        counter origin_invalid,
    }
}

/// One allowed-origin matcher.
#[derive(Debug)]
struct OriginMatcher {
    matcher: StringMatcher,
    /// The matcher accepts the literal `*`: every origin is allowed.
    any: bool,
}

/// A compiled `CorsPolicy` (one level's). `None` and empty values are unset, so a
/// less specific level's value applies.
#[derive(Debug)]
pub struct CorsPolicyConfig {
    origins: Vec<OriginMatcher>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: Option<bool>,
    enabled: RuntimeFraction,
    shadow: RuntimeFraction,
    allow_private_network_access: Option<bool>,
    forward_not_matching_preflights: Option<bool>,
}

impl CorsPolicyConfig {
    /// Compiles `p`; `path` points at the `CorsPolicy`.
    pub fn from_proto(p: &CorsPolicy, path: &FieldPath) -> Result<CorsPolicyConfig, ConfigError> {
        let mut origins = Vec::with_capacity(p.allow_origin_string_match.len());
        for (i, sm) in p.allow_origin_string_match.iter().enumerate() {
            let mut mp = path.clone();
            mp.push_field("allow_origin_string_match");
            mp.push_index(i);
            let matcher = StringMatcher::from_proto(sm, &mp)?;
            origins.push(OriginMatcher { any: matcher.matches("*"), matcher });
        }
        let value = |field: &str, v: &str| -> Result<Option<HeaderValue>, ConfigError> {
            if v.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(v)
                .map(Some)
                .map_err(|_| path.field_error(field, format!("invalid header value '{v}'")))
        };
        Ok(CorsPolicyConfig {
            origins,
            allow_methods: value("allow_methods", &p.allow_methods)?,
            allow_headers: value("allow_headers", &p.allow_headers)?,
            expose_headers: value("expose_headers", &p.expose_headers)?,
            max_age: value("max_age", &p.max_age)?,
            allow_credentials: p.allow_credentials.as_ref().map(|b| b.value),
            enabled: Percent::from_runtime(p.filter_enabled.as_ref(), Percent::HUNDRED),
            shadow: Percent::from_runtime(p.shadow_enabled.as_ref(), Percent::ZERO),
            allow_private_network_access: p.allow_private_network_access.as_ref().map(|b| b.value),
            forward_not_matching_preflights: p.forward_not_matching_preflights.as_ref().map(|b| b.value),
        })
    }
}

impl CorsPolicyConfig {
    /// Compiles the deprecated `VirtualHost.cors` (`envoy.config.route.v3.CorsPolicy`),
    /// which has the filter policy's fields under the same names; `path` points at it.
    pub fn from_route_proto(p: &RouteCorsPolicy, path: &FieldPath) -> Result<CorsPolicyConfig, ConfigError> {
        let filter_enabled = p.enabled_specifier.as_ref().map(|EnabledSpecifier::FilterEnabled(f)| f.clone());
        let policy = CorsPolicy {
            allow_origin_string_match: p.allow_origin_string_match.clone(),
            allow_methods: p.allow_methods.clone(),
            allow_headers: p.allow_headers.clone(),
            expose_headers: p.expose_headers.clone(),
            max_age: p.max_age.clone(),
            allow_credentials: p.allow_credentials,
            filter_enabled,
            shadow_enabled: p.shadow_enabled.clone(),
            allow_private_network_access: p.allow_private_network_access,
            forward_not_matching_preflights: p.forward_not_matching_preflights,
        };
        CorsPolicyConfig::from_proto(&policy, path)
    }
}

/// `RouteBuildContext::vhost_cors` for route tables built next to this filter.
pub fn vhost_policy(p: &RouteCorsPolicy, path: &FieldPath) -> Result<PerRouteConfig, ConfigError> {
    Ok(Arc::new(CorsPolicyConfig::from_route_proto(p, path)?))
}

/// The policies of a route's levels, most specific first, read field by field as
/// Envoy's CORS filter does.
struct Policies<'a>(Vec<&'a CorsPolicyConfig>);

impl<'a> Policies<'a> {
    fn first<T>(&self, field: impl Fn(&'a CorsPolicyConfig) -> Option<T>) -> Option<T> {
        self.0.iter().find_map(|p| field(p))
    }

    fn allows(&self, origin: &str) -> bool {
        let origins = self.0.iter().map(|p| &p.origins).find(|o| !o.is_empty());
        origins.is_some_and(|o| o.iter().any(|o| o.any || o.matcher.matches(origin)))
    }

    fn allow_methods(&self) -> Option<&'a HeaderValue> {
        self.first(|p| p.allow_methods.as_ref())
    }

    fn allow_headers(&self) -> Option<&'a HeaderValue> {
        self.first(|p| p.allow_headers.as_ref())
    }

    fn expose_headers(&self) -> Option<&'a HeaderValue> {
        self.first(|p| p.expose_headers.as_ref())
    }

    fn max_age(&self) -> Option<&'a HeaderValue> {
        self.first(|p| p.max_age.as_ref())
    }

    fn allow_credentials(&self) -> bool {
        self.first(|p| p.allow_credentials).unwrap_or(false)
    }

    fn allow_private_network_access(&self) -> bool {
        self.first(|p| p.allow_private_network_access).unwrap_or(false)
    }

    fn forward_not_matching_preflights(&self) -> bool {
        self.first(|p| p.forward_not_matching_preflights).unwrap_or(true)
    }
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let _: Cors = decode_any(any, path)?;
    Ok(Arc::new(CorsFactory::new(ctx.store, ctx.hcm_stat_prefix).named(ctx.filter_name)))
}

fn create_policy(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let policy: CorsPolicy = decode_any(any, path)?;
    Ok(Arc::new(CorsPolicyConfig::from_proto(&policy, path)?))
}

/// The filter's config: only its stats, the policies are per route.
#[derive(Debug)]
pub struct CorsFactory {
    stats: Arc<CorsStats>,
    /// The filter's configured name: its routes' policies are found under it.
    name: Arc<str>,
}

impl CorsFactory {
    pub fn new(store: &Store, hcm_stat_prefix: &str) -> CorsFactory {
        let stats = Arc::new(CorsStats::new(store, &format!("http.{hcm_stat_prefix}.cors.")));
        CorsFactory { stats, name: NAME.into() }
    }

    /// The factory of a filter configured under `name`.
    pub fn named(self, name: &str) -> Self {
        CorsFactory { name: name.into(), ..self }
    }
}

impl StreamFilterFactory for CorsFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(CorsFilter { stats: self.stats.clone(), name: self.name.clone(), response: None })
    }
}

/// What an allowed CORS request's response gets.
struct ResponseHeaders {
    origin: HeaderValue,
    allow_credentials: bool,
    expose_headers: Option<HeaderValue>,
}

struct CorsFilter {
    stats: Arc<CorsStats>,
    name: Arc<str>,
    response: Option<ResponseHeaders>,
}

impl StreamFilter for CorsFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        // As Envoy: a direct_response or redirect route has no route entry, so no
        // policy applies (no CORS headers, nothing counted).
        let Some(route) = cx.route.filter(|r| matches!(r.action, RouteAction::Forward(_))) else {
            return FilterStatus::Continue;
        };
        let mut policies = Policies(route.per_filter_configs::<CorsPolicyConfig>(&self.name).collect());
        // As Envoy: the deprecated `VirtualHost.cors` applies only when no level has
        // a `typed_per_filter_config` policy.
        if policies.0.is_empty() {
            policies.0.extend(route.vhost_cors.as_deref().and_then(|c| c.downcast_ref::<CorsPolicyConfig>()));
        }
        let Some(most_specific) = policies.0.first() else { return FilterStatus::Continue };
        let enabled = most_specific.enabled.enabled();
        if !enabled && !most_specific.shadow.enabled() {
            return FilterStatus::Continue;
        }
        let Some(origin) = parts.headers.get(ORIGIN).filter(|v| !v.is_empty()) else {
            return FilterStatus::Continue;
        };
        let allowed = policies.allows(&String::from_utf8_lossy(origin.as_bytes()));
        if allowed {
            self.stats.origin_valid.inc();
        } else {
            self.stats.origin_invalid.inc();
        }
        if !enabled {
            return FilterStatus::Continue;
        }
        if allowed {
            self.response = Some(ResponseHeaders {
                origin: origin.clone(),
                allow_credentials: policies.allow_credentials(),
                expose_headers: policies.expose_headers().cloned(),
            });
        }
        let request_method = parts.headers.get(ACCESS_CONTROL_REQUEST_METHOD).filter(|v| !v.is_empty());
        let Some(request_method) = request_method.filter(|_| parts.method == Method::OPTIONS) else {
            return FilterStatus::Continue;
        };
        // A preflight.
        if !allowed && policies.forward_not_matching_preflights() {
            return FilterStatus::Continue;
        }
        let mut reply = LocalReply::new(StatusCode::OK, "", DETAILS);
        let h = &mut reply.headers;
        if allowed {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if policies.allow_credentials() {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if let Some(methods) = policies.allow_methods() {
            let value = if methods == "*" { request_method } else { methods };
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, value.clone());
        }
        if let Some(headers) = policies.allow_headers() {
            let value = if headers == "*" {
                parts.headers.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned().unwrap_or(HeaderValue::from_static(""))
            } else {
                headers.clone()
            };
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        if let Some(max_age) = policies.max_age() {
            h.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        if policies.allow_private_network_access()
            && parts.headers.get(REQUEST_PRIVATE_NETWORK).is_some_and(|v| v.as_bytes() == b"true")
        {
            h.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        FilterStatus::LocalReply(reply)
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        _end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        if let Some(r) = &self.response {
            add_response_headers(&mut parts.headers, r);
        }
        EncodeStatus::Continue
    }
}

fn add_response_headers(h: &mut HeaderMap, r: &ResponseHeaders) {
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, r.origin.clone());
    if r.allow_credentials {
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Some(v) = &r.expose_headers {
        h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{any_from_yaml, decode_then_encode, request, route_table};
    use crate::router::RouteTable;

    const ROUTES: &str = r#"
        virtual_hosts:
        - name: vh
          domains: ["*"]
          typed_per_filter_config:
            envoy.filters.http.cors:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
              allow_origin_string_match: [{exact: "*"}]
          routes:
          - match: {prefix: /api}
            route: {cluster: c}
            typed_per_filter_config:
              envoy.filters.http.cors:
                "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                allow_origin_string_match:
                - {exact: "https://good.example"}
                - {safe_regex: {regex: "https://.*\\.good\\.example"}}
                - {suffix: ".EXAMPLE.ORG", ignore_case: true}
                allow_methods: "GET, POST"
                allow_headers: "x-a,x-b"
                expose_headers: "x-exp"
                max_age: "600"
                allow_credentials: true
                allow_private_network_access: true
          - match: {prefix: /strict}
            route: {cluster: c}
            typed_per_filter_config:
              envoy.filters.http.cors:
                "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                allow_origin_string_match: [{exact: "https://good.example"}]
                forward_not_matching_preflights: false
          - match: {prefix: /off}
            route: {cluster: c}
            typed_per_filter_config:
              envoy.filters.http.cors:
                "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                allow_origin_string_match: [{exact: "*"}]
                filter_enabled: {default_value: {numerator: 0}}
          - match: {prefix: /shadow}
            route: {cluster: c}
            typed_per_filter_config:
              envoy.filters.http.cors:
                "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                allow_origin_string_match: [{exact: "https://good.example"}]
                filter_enabled: {default_value: {numerator: 0}}
                shadow_enabled: {default_value: {numerator: 100}}
          - match: {prefix: /local}
            direct_response: {status: 200}
          - match: {prefix: /moved}
            redirect: {path_redirect: /elsewhere}
          - match: {prefix: /}
            route: {cluster: c}
        "#;

    struct Run {
        status: FilterStatus,
        response: http::response::Parts,
    }

    /// Decodes a request and encodes either the local reply or an upstream 200.
    fn run(f: &CorsFactory, table: &RouteTable, method: &str, uri: &str, headers: &[(&str, &str)]) -> Run {
        let mut all = vec![("host", "h")];
        all.extend_from_slice(headers);
        let (status, response) = decode_then_encode(f, Some(table), &mut request(method, uri, &all));
        Run { status, response }
    }

    /// A preflight of a GET from `origin`.
    fn preflight(f: &CorsFactory, table: &RouteTable, uri: &str, origin: &str) -> Run {
        run(f, table, "OPTIONS", uri, &[("origin", origin), ("access-control-request-method", "GET")])
    }

    fn header<'a>(r: &'a Run, name: &str) -> Option<&'a str> {
        r.response.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn setup() -> (Store, CorsFactory, RouteTable) {
        let store = Store::new();
        let f = CorsFactory::new(&store, "ingress");
        (store, f, route_table(ROUTES))
    }

    #[test]
    fn preflight_from_an_allowed_origin_is_answered_locally() {
        let (store, f, t) = setup();
        let r = run(
            &f,
            &t,
            "OPTIONS",
            "/api/x",
            &[
                ("origin", "https://good.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-private-network", "true"),
            ],
        );
        let FilterStatus::LocalReply(reply) = &r.status else { panic!("expected a local reply, got {:?}", r.status) };
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.is_empty());
        assert_eq!(reply.details, "cors_response");
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://good.example"));
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&r, "access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(header(&r, "access-control-allow-headers"), Some("x-a,x-b"));
        assert_eq!(header(&r, "access-control-max-age"), Some("600"));
        assert_eq!(header(&r, "access-control-allow-private-network"), Some("true"));
        assert_eq!(header(&r, "access-control-expose-headers"), Some("x-exp"));
        assert_eq!(store.counter_value("http.ingress.cors.origin_valid"), Some(1));
    }

    #[test]
    fn actual_request_gets_allow_origin_on_its_response() {
        let (store, f, t) = setup();
        for origin in ["https://a.good.example", "http://x.Example.org"] {
            let r = run(&f, &t, "GET", "/api/x", &[("origin", origin)]);
            assert!(matches!(r.status, FilterStatus::Continue));
            assert_eq!(header(&r, "access-control-allow-origin"), Some(origin));
            assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
            assert_eq!(header(&r, "access-control-expose-headers"), Some("x-exp"));
            assert_eq!(header(&r, "access-control-allow-methods"), None);
        }
        // OPTIONS without Access-Control-Request-Method is not a preflight.
        let r = run(&f, &t, "OPTIONS", "/api/x", &[("origin", "https://good.example")]);
        assert!(matches!(r.status, FilterStatus::Continue));
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://good.example"));
        assert_eq!(store.counter_value("http.ingress.cors.origin_valid"), Some(3));
    }

    #[test]
    fn invalid_origin_gets_no_cors_headers() {
        let (store, f, t) = setup();
        let r = run(&f, &t, "GET", "/api/x", &[("origin", "https://evil.example")]);
        assert!(matches!(r.status, FilterStatus::Continue));
        assert!(r.response.headers.is_empty());
        // A non-matching preflight is forwarded by default...
        let r = preflight(&f, &t, "/api/x", "https://evil.example");
        assert!(matches!(r.status, FilterStatus::Continue));
        assert!(r.response.headers.is_empty());
        // ...or answered with an empty 200 when forward_not_matching_preflights is false.
        let r = preflight(&f, &t, "/strict", "https://evil.example");
        let FilterStatus::LocalReply(reply) = &r.status else { panic!("expected a local reply") };
        assert_eq!((reply.status, reply.details), (StatusCode::OK, "cors_response"));
        assert!(r.response.headers.is_empty());
        assert_eq!(store.counter_value("http.ingress.cors.origin_invalid"), Some(3));
    }

    #[test]
    fn wildcard_disabled_shadow_and_no_origin() {
        let (store, f, t) = setup();
        // The virtual host's policy (exact "*") applies to routes without their own.
        let r = run(&f, &t, "GET", "/elsewhere", &[("origin", "https://any.example")]);
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://any.example"));
        // No Origin: not a CORS request, nothing counted.
        let r = run(&f, &t, "GET", "/elsewhere", &[]);
        assert!(r.response.headers.is_empty());
        // filter_enabled 0%: nothing at all.
        let r = preflight(&f, &t, "/off", "https://a");
        assert!(matches!(r.status, FilterStatus::Continue) && r.response.headers.is_empty());
        assert_eq!(store.counter_value("http.ingress.cors.origin_valid"), Some(1));
        // Shadow: counted, not enforced.
        let r = preflight(&f, &t, "/shadow", "https://good.example");
        assert!(matches!(r.status, FilterStatus::Continue) && r.response.headers.is_empty());
        let _ = run(&f, &t, "GET", "/shadow", &[("origin", "https://bad.example")]);
        assert_eq!(store.counter_value("http.ingress.cors.origin_valid"), Some(2));
        assert_eq!(store.counter_value("http.ingress.cors.origin_invalid"), Some(1));
    }

    #[test]
    fn deprecated_vhost_cors_applies_only_without_typed_policies() {
        let store = Store::new();
        let f = CorsFactory::new(&store, "ingress");
        let t = route_table(
            r#"
        virtual_hosts:
        - name: v
          domains: ["*"]
          cors:
            allow_origin_string_match: [{exact: "https://good.example"}]
            allow_methods: "GET, PUT"
          routes:
          - match: {prefix: /typed}
            route: {cluster: c}
            typed_per_filter_config:
              envoy.filters.http.cors:
                "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                allow_methods: "POST"
          - match: {prefix: /}
            route: {cluster: c}
        "#,
        );
        let r = preflight(&f, &t, "/x", "https://good.example");
        assert!(matches!(r.status, FilterStatus::LocalReply(_)), "answered locally");
        assert_eq!(header(&r, "access-control-allow-methods"), Some("GET, PUT"));
        // A typed policy at any level replaces the virtual host's whole policy.
        let r = preflight(&f, &t, "/typed", "https://good.example");
        assert!(matches!(r.status, FilterStatus::Continue) && r.response.headers.is_empty());
    }

    #[test]
    fn routes_without_a_route_entry_get_no_cors() {
        let (store, f, t) = setup();
        // The virtual host's policy allows every origin, but direct_response and
        // redirect routes have no route entry: no headers, no preflight, no stats.
        for uri in ["/local", "/moved"] {
            let r = run(&f, &t, "GET", uri, &[("origin", "https://any.example")]);
            assert!(matches!(r.status, FilterStatus::Continue) && r.response.headers.is_empty());
            let r = preflight(&f, &t, uri, "https://any.example");
            assert!(matches!(r.status, FilterStatus::Continue) && r.response.headers.is_empty());
        }
        assert_eq!(store.counter_value("http.ingress.cors.origin_valid").unwrap_or(0), 0);
        assert_eq!(store.counter_value("http.ingress.cors.origin_invalid").unwrap_or(0), 0);
    }

    #[test]
    fn config_errors_name_the_field() {
        let path = FieldPath::starting_at("vh.typed_per_filter_config[\"envoy.filters.http.cors\"]");
        let any = any_from_yaml(POLICY_TYPE, "{allow_origin_string_match: [{safe_regex: {regex: '(('}}]}");
        let err = create_policy(&any, &path, &crate::stats::Store::new()).unwrap_err();
        assert_eq!(
            err.path,
            "vh.typed_per_filter_config[\"envoy.filters.http.cors\"].allow_origin_string_match[0].safe_regex.regex"
        );
        let any = any_from_yaml(POLICY_TYPE, "{allow_methods: \"a\\nb\"}");
        assert_eq!(
            create_policy(&any, &path, &crate::stats::Store::new()).unwrap_err().path,
            format!("{path}.allow_methods")
        );
    }
}
