//! `envoy.filters.http.jwt_authn`: lets a request through only with the JSON Web
//! Tokens its route requires, verified against the providers' keys.
//!
//! As Envoy's filter (checked against Envoy 1.40: tests/compat `filter_jwt_authn`):
//! the headers a verified token would set are first removed from every request;
//! a CORS preflight may pass unchecked (`bypass_cors_preflight`); the route's
//! `PerRouteConfig` may disable the check or name a requirement of
//! `requirement_map`, else the first matching rule gives it. A request that
//! passes goes on with the verified tokens' payload and claim headers (and
//! without their header unless `forward`); one that fails gets 401 (403 for a
//! token of another audience) with Envoy's reason as the body and a
//! `www-authenticate: Bearer realm="<url>"` header (plus `error="invalid_token"`
//! unless the token was missing). Counted in `http.<prefix>.jwt_authn.*`.
//!
//! The pieces: `provider` (a compiled provider), `extract` (where tokens are),
//! `jwt` (a token's parts and claims), `jwks` (keys and signatures), `remote`
//! (fetched keys, per worker), `requirement` (rules and the requirement tree),
//! `verifier` (one request's check), `status` (Envoy's reasons).

mod extract;
mod jwks;
mod jwt;
mod provider;
mod remote;
mod requirement;
mod status;
mod verifier;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::per_route_config::RequirementSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, PerRouteConfig as PerRouteProto,
};
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::common;
use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::LocalReply;
use crate::router::PerRouteConfig;
use crate::stats::Store;
use crate::thread_local::Slot;
use crate::upstream::ThreadLocalClusterManager;

use extract::Extractor;
use provider::Provider;
use requirement::{ProviderIndex, Requirement, Rule};
use status::Status;

pub const NAME: &str = "envoy.filters.http.jwt_authn";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((PER_ROUTE_TYPE, create_per_route)),
};

define_stats! {
    /// `http.<prefix>.jwt_authn.*`.
    #[derive(Debug)]
    pub struct JwtAuthnStats {
        counter allowed,
        counter cors_preflight_bypassed,
        counter denied,
        counter jwks_fetch_failed,
        counter jwks_fetch_success,
        counter jwt_cache_hit,
        counter jwt_cache_miss,
    }
}

/// Tells configs apart in the workers' remote key caches.
static NEXT_CONFIG_ID: AtomicU64 = AtomicU64::new(1);

/// A compiled `JwtAuthentication`.
#[derive(Debug)]
pub struct JwtAuthnConfig {
    id: u64,
    /// Sorted by name, each with its own places.
    providers: Vec<(Provider, Extractor)>,
    /// Every provider's places (`allow_missing`, `allow_missing_or_failed`).
    all_places: Extractor,
    rules: Vec<Rule>,
    requirement_map: HashMap<String, Requirement>,
    bypass_cors_preflight: bool,
    /// The headers verified tokens set, removed from each request first.
    output_headers: Vec<HeaderName>,
    stats: JwtAuthnStats,
    clusters: Slot<ThreadLocalClusterManager>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl JwtAuthnConfig {
    /// Envoy's 403 for a route naming a requirement `requirement_map` lacks.
    fn unknown_requirement(&self, name: &str) -> LocalReply {
        let error = requirement::unknown_requirement(name, &self.requirement_map);
        let details = crate::http::local_reply::static_details(&format!(
            "jwt_authn_access_denied{{{}}}",
            error.replace(' ', "_")
        ));
        LocalReply::new(StatusCode::FORBIDDEN, format!("Failed JWT authentication: {error}"), details)
    }

    /// The provider for a token found where several look: the first with its
    /// issuer, else the first with none.
    fn provider_for(&self, iss: &str) -> Option<usize> {
        let providers = &self.providers;
        providers
            .iter()
            .position(|(p, _)| p.issuer == iss)
            .or_else(|| providers.iter().position(|(p, _)| p.issuer.is_empty()))
    }
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: JwtAuthentication = decode_any(any, path)?;
    let mut names: Vec<&String> = c.providers.keys().collect();
    names.sort();
    let mut providers = Vec::with_capacity(names.len());
    for name in names {
        let mut p = path.child("providers");
        p.push_key(name);
        let provider = Provider::from_proto(name, &c.providers[name], &p)?;
        let places = Extractor::new([&provider]);
        providers.push((provider, places));
    }
    let index: ProviderIndex = providers.iter().enumerate().map(|(i, (p, _))| (p.name.clone(), i)).collect();
    let mut requirement_map = HashMap::with_capacity(c.requirement_map.len());
    let mut keys: Vec<&String> = c.requirement_map.keys().collect();
    keys.sort();
    for key in keys {
        let mut p = path.child("requirement_map");
        p.push_key(key);
        requirement_map.insert(key.clone(), Requirement::from_proto(&c.requirement_map[key], &index, &p)?);
    }
    let mut rules = Vec::with_capacity(c.rules.len());
    for (i, r) in c.rules.iter().enumerate() {
        let mut p = path.child("rules");
        p.push_index(i);
        rules.push(Rule::from_proto(r, &index, &requirement_map, &p)?);
    }
    let output_headers = providers.iter().flat_map(|(p, _)| p.output_headers().cloned()).collect();
    let all_places = Extractor::new(providers.iter().map(|(p, _)| p));
    Ok(Arc::new(JwtAuthnFilterFactory {
        config: Arc::new(JwtAuthnConfig {
            id: NEXT_CONFIG_ID.fetch_add(1, Ordering::Relaxed),
            providers,
            all_places,
            rules,
            requirement_map,
            bypass_cors_preflight: c.bypass_cors_preflight,
            output_headers,
            stats: JwtAuthnStats::new(ctx.store, &format!("http.{}.jwt_authn.", ctx.hcm_stat_prefix)),
            clusters: ctx.clusters.clone(),
            name: ctx.filter_name.into(),
        }),
    }))
}

/// A route's `PerRouteConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JwtAuthnRouteConfig {
    Disabled,
    RequirementName(String),
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let p: PerRouteProto = decode_any(any, path)?;
    match p.requirement_specifier {
        Some(RequirementSpecifier::Disabled(true)) => Ok(Arc::new(JwtAuthnRouteConfig::Disabled)),
        Some(RequirementSpecifier::RequirementName(name)) if !name.is_empty() => {
            Ok(Arc::new(JwtAuthnRouteConfig::RequirementName(name)))
        }
        _ => Err(path.error("one of disabled: true or requirement_name must be set")),
    }
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct JwtAuthnFilterFactory {
    config: Arc<JwtAuthnConfig>,
}

impl StreamFilterFactory for JwtAuthnFilterFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(JwtAuthnFilter { config: self.config.clone() })
    }
}

struct JwtAuthnFilter {
    config: Arc<JwtAuthnConfig>,
}

/// Envoy's CORS preflight: `OPTIONS` with an `origin` and an
/// `access-control-request-method`.
fn is_cors_preflight(parts: &http::request::Parts) -> bool {
    let present = |name| parts.headers.get(name).is_some_and(|v: &HeaderValue| !v.is_empty());
    parts.method == Method::OPTIONS
        && present(http::header::ORIGIN)
        && present(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Envoy's bound on the path in a `realm`.
const MAX_REALM_PATH: usize = 256;

/// The request's URL for the `realm`: scheme (as `x-forwarded-proto` says), host and
/// path (its first `MAX_REALM_PATH` bytes).
fn realm(parts: &http::request::Parts) -> String {
    let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let scheme = header(crate::http::headers::X_FORWARDED_PROTO).unwrap_or("http");
    let host = header(http::header::HOST).or(parts.uri.authority().map(|a| a.as_str())).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // A path is ASCII (the codecs refuse others), so any byte is a char boundary.
    let path = path.get(..MAX_REALM_PATH).unwrap_or(path);
    format!("{scheme}://{host}{path}")
}

fn refusal(status: Status, realm: &str) -> LocalReply {
    let mut reply = LocalReply::new(status.http_status(), status.message(), status.details());
    let challenge = if status == Status::JwtMissed {
        format!("Bearer realm=\"{realm}\"")
    } else {
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        reply.headers.insert(http::header::WWW_AUTHENTICATE, v);
    }
    reply
}

impl StreamFilter for JwtAuthnFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let config = self.config.clone();
        for name in &config.output_headers {
            parts.headers.remove(name);
        }
        // A bypassed preflight, a disabled route and a request no rule covers all
        // count as allowed, as Envoy's.
        if config.bypass_cors_preflight && is_cors_preflight(parts) {
            config.stats.cors_preflight_bypassed.inc();
            config.stats.allowed.inc();
            return FilterStatus::Continue;
        }
        let per_route = cx.route.and_then(|r| r.per_filter_config::<JwtAuthnRouteConfig>(&config.name));
        let requirement = match per_route {
            Some(JwtAuthnRouteConfig::Disabled) => None,
            Some(JwtAuthnRouteConfig::RequirementName(name)) => match config.requirement_map.get(name) {
                Some(r) => Some(r.clone()),
                None => {
                    config.stats.denied.inc();
                    return FilterStatus::LocalReply(config.unknown_requirement(name));
                }
            },
            None => config.rules.iter().find(|r| r.matcher.matches(parts)).and_then(|r| r.requirement.clone()),
        };
        let Some(requirement) = requirement else {
            config.stats.allowed.inc();
            return FilterStatus::Continue;
        };
        let realm = realm(parts);
        let (headers, uri) = (parts.headers.clone(), parts.uri.clone());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        FilterStatus::Decide(Box::pin(async move {
            let mut check = verifier::Check { config: &config, headers, uri, now };
            let status = check.requirement(&requirement).await;
            if status == Status::Ok {
                config.stats.allowed.inc();
                let (headers, uri) = (check.headers, check.uri);
                FilterStatus::ContinueWith(Box::new(move |request| {
                    request.headers = headers;
                    request.uri = uri;
                }))
            } else {
                config.stats.denied.inc();
                FilterStatus::LocalReply(refusal(status, &realm))
            }
        }))
    }
}

/// `(message full name, supported fields)` of the filter's configs.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["providers", "rules", "requirement_map", "bypass_cors_preflight"]),
    (
        "envoy.extensions.filters.http.jwt_authn.v3.JwtProvider",
        &[
            "issuer",
            "audiences",
            "local_jwks",
            "remote_jwks",
            "forward",
            "from_headers",
            "from_params",
            "from_cookies",
            "forward_payload_header",
            "pad_forward_payload_header",
            "clock_skew_seconds",
            "claim_to_headers",
        ],
    ),
    ("envoy.extensions.filters.http.jwt_authn.v3.RemoteJwks", &["http_uri", "cache_duration"]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtHeader", &["name", "value_prefix"]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtClaimToHeader", &["header_name", "claim_name"]),
    ("envoy.extensions.filters.http.jwt_authn.v3.RequirementRule", &["match", "requires", "requirement_name"]),
    (
        "envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement",
        &[
            "provider_name",
            "provider_and_audiences",
            "requires_any",
            "requires_all",
            "allow_missing_or_failed",
            "allow_missing",
        ],
    ),
    ("envoy.extensions.filters.http.jwt_authn.v3.ProviderWithAudiences", &["provider_name", "audiences"]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementOrList", &["requirements"]),
    ("envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementAndList", &["requirements"]),
    (PER_ROUTE_TYPE, &["disabled", "requirement_name"]),
];
