//! `envoy.filters.http.csrf`: refuses state-changing requests that come from
//! another origin (cross-site request forgery), by comparing where a request
//! says it comes from with the host it is sent to.
//!
//! Envoy's rules, checked against Envoy 1.40 (tests/compat `filter_csrf`): only
//! `POST`, `PUT`, `DELETE` and `PATCH` are checked. The source origin is the
//! host and port of `origin`, else of `referer` (a value that is not an absolute
//! URL counts as it is; an origin `null` is no source); the target is the
//! `host`. A request without a source counts `missing_source_origin`; one whose source is neither
//! the target nor matched by `additional_origins` counts `request_invalid`; the
//! others `request_valid`. An invalid request gets 403 `Invalid origin`
//! (`csrf_origin_mismatch`) where `filter_enabled` samples true; where only
//! `shadow_enabled` does, it is counted and goes on. A route's `CsrfPolicy`
//! (`typed_per_filter_config`) replaces the filter's.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::csrf::v3::CsrfPolicy as CsrfPolicyProto;
use envoy_types::pb::google::protobuf::Any;
use http::{Method, StatusCode};

use super::common::{self, Percent};
use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::LocalReply;
use crate::matcher::string_matcher::StringMatcher;
use crate::router::PerRouteConfig;
use crate::runtime::RuntimeFraction;
use crate::stats::Store;

pub const NAME: &str = "envoy.filters.http.csrf";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.csrf.v3.CsrfPolicy";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    // The same message configures a route.
    per_route: Some((CONFIG_TYPE, create_per_route)),
};

define_stats! {
    /// `http.<prefix>.csrf.*`.
    #[derive(Debug)]
    pub struct CsrfStats {
        counter missing_source_origin,
        counter request_invalid,
        counter request_valid,
    }
}

/// A compiled `CsrfPolicy`.
#[derive(Debug)]
pub struct CsrfPolicy {
    filter_enabled: RuntimeFraction,
    shadow_enabled: RuntimeFraction,
    additional_origins: Vec<StringMatcher>,
}

impl CsrfPolicy {
    fn from_any(any: &Any, path: &FieldPath) -> Result<CsrfPolicy, ConfigError> {
        common::check_supported(any, path)?;
        let p: CsrfPolicyProto = decode_any(any, path)?;
        let Some(enabled) = &p.filter_enabled else {
            return Err(path.field_error("filter_enabled", "value is required"));
        };
        let additional_origins = p
            .additional_origins
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut at = path.child("additional_origins");
                at.push_index(i);
                StringMatcher::from_proto(m, &at)
            })
            .collect::<Result<_, _>>()?;
        Ok(CsrfPolicy {
            filter_enabled: Percent::from_runtime(Some(enabled), Percent::ZERO),
            shadow_enabled: Percent::from_runtime(p.shadow_enabled.as_ref(), Percent::ZERO),
            additional_origins,
        })
    }

    /// Whether a request from `source` to `target` is allowed.
    fn allows(&self, source: &str, target: &str) -> bool {
        source == target || self.additional_origins.iter().any(|m| m.matches(source))
    }
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    Ok(Arc::new(CsrfFilterFactory {
        policy: Arc::new(CsrfPolicy::from_any(any, path)?),
        stats: Arc::new(CsrfStats::new(ctx.store, &format!("http.{}.csrf.", ctx.hcm_stat_prefix))),
        name: ctx.filter_name.into(),
    }))
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    Ok(Arc::new(CsrfPolicy::from_any(any, path)?))
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct CsrfFilterFactory {
    policy: Arc<CsrfPolicy>,
    stats: Arc<CsrfStats>,
    /// The filter's configured name: its routes' policies are found under it.
    name: Arc<str>,
}

impl StreamFilterFactory for CsrfFilterFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(CsrfFilter { policy: self.policy.clone(), stats: self.stats.clone(), name: self.name.clone() })
    }
}

struct CsrfFilter {
    policy: Arc<CsrfPolicy>,
    stats: Arc<CsrfStats>,
    name: Arc<str>,
}

/// Envoy's `hostAndPort`: of an absolute URL its host and port, of anything
/// else the value itself.
fn host_and_port(value: &str) -> &str {
    let Some((scheme, rest)) = value.split_once("://") else { return value };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if valid_scheme && !authority.is_empty() {
        authority
    } else {
        value
    }
}

impl StreamFilter for CsrfFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let policy = cx.route.and_then(|r| r.per_filter_config::<CsrfPolicy>(&self.name)).unwrap_or(&self.policy);
        let enforced = policy.filter_enabled.enabled();
        if !enforced && !policy.shadow_enabled.enabled() {
            return FilterStatus::Continue;
        }
        if ![Method::POST, Method::PUT, Method::DELETE, Method::PATCH].contains(&parts.method) {
            return FilterStatus::Continue;
        }
        let h = &parts.headers;
        let value = |name| h.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        // An opaque origin (`null`, RFC 6454 §7.3) names no source, and the
        // referer is not asked then (as Envoy).
        let source = match value(http::header::ORIGIN) {
            Some("null") => None,
            Some(origin) => Some(origin),
            None => value(http::header::REFERER),
        }
        .map(host_and_port);
        let target = value(http::header::HOST).or_else(|| parts.uri.authority().map(|a| a.as_str())).unwrap_or("");
        let valid = match source {
            None => {
                self.stats.missing_source_origin.inc();
                false
            }
            Some(source) if !policy.allows(source, host_and_port(target)) => {
                self.stats.request_invalid.inc();
                false
            }
            Some(_) => {
                self.stats.request_valid.inc();
                true
            }
        };
        if valid {
            return FilterStatus::Continue;
        }
        if !enforced {
            return FilterStatus::Continue;
        }
        FilterStatus::LocalReply(LocalReply::new(StatusCode::FORBIDDEN, "Invalid origin", "csrf_origin_mismatch"))
    }
}

/// `(message full name, supported fields)` of the filter's config.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] =
    &[(CONFIG_TYPE, &["filter_enabled", "shadow_enabled", "additional_origins"])];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_the_host_and_port_of_an_absolute_url() {
        assert_eq!(host_and_port("https://example.com"), "example.com");
        assert_eq!(host_and_port("http://example.com:8080/page?q#f"), "example.com:8080");
        assert_eq!(host_and_port("null"), "null");
        assert_eq!(host_and_port("example.com"), "example.com");
        assert_eq!(host_and_port("://example.com"), "://example.com");
    }
}
