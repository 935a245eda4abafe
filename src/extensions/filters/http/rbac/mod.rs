//! `envoy.filters.http.rbac`: allows or refuses each request by Envoy's RBAC
//! policies (`engine`), on the request head and the connection's facts.
//!
//! As Envoy 1.40 (tests/compat `filter_rbac`): a refused request gets 403
//! `RBAC: access denied` with `%RESPONSE_CODE_DETAILS%`
//! `rbac_access_denied_matched_policy[<policy>]` (`[none]` when no policy
//! matched); `http.<prefix>.rbac.allowed` / `denied` count the enforced
//! decisions (after `rules_stat_prefix`), `shadow_allowed` / `shadow_denied` the
//! `shadow_rules`, which only count and record (after `shadow_rules_stat_prefix`).
//! Both results go into the stream's dynamic metadata (`envoy.filters.http.rbac`:
//! `enforced_engine_result`, `enforced_effective_policy_id`,
//! `shadow_engine_result`, `shadow_effective_policy_id`, each key after its
//! prefix). A route's `RBACPerRoute` replaces the filter's
//! config; one with no `rbac` turns the filter off for the route.
//!
//! The rules are policies (`rules`, the shared engine) or Envoy's generic
//! matcher (`matcher`, `matcher_engine`), whose action names the effective
//! policy; as in Envoy, a matcher wins over rules set beside it (with a warning).

mod matcher_engine;

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{Rbac as RbacProto, RbacPerRoute};
use envoy_types::pb::google::protobuf::{Any, Struct};
use http::StatusCode;

use super::common;
use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::filters::common::rbac::{self as common_rbac, record, Decision, RbacEngine, RbacInput};
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::{static_details, LocalReply};
use crate::router::PerRouteConfig;
use crate::stats::Store;
use matcher_engine::RbacMatcher;
pub use matcher_engine::ACTION_TYPE;

pub const NAME: &str = "envoy.filters.http.rbac";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
const PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((PER_ROUTE_TYPE, create_per_route)),
};

define_stats! {
    /// `http.<prefix>.rbac.<rules_stat_prefix>*`.
    #[derive(Debug)]
    pub struct RbacStats {
        counter allowed,
        counter denied,
    }
}

define_stats! {
    /// `http.<prefix>.rbac.<shadow_rules_stat_prefix>shadow_*`.
    #[derive(Debug)]
    pub struct RbacShadowStats {
        counter shadow_allowed,
        counter shadow_denied,
    }
}

/// A compiled `RBAC` (the filter's or a route's).
#[derive(Debug)]
pub struct RbacConfig {
    enforced: Option<Engine>,
    shadow: Option<Engine>,
    /// `rules_stat_prefix` and `shadow_rules_stat_prefix`, which also prefix
    /// the metadata keys, as is.
    rules_prefix: String,
    shadow_prefix: String,
}

/// An engine and the details of each way it can refuse.
#[derive(Debug)]
struct Engine {
    rules: Rules,
    /// `rbac_access_denied_matched_policy[<name>]` of each policy, in the
    /// engine's order.
    details: Vec<&'static str>,
}

/// Policies or a matcher.
#[derive(Debug)]
enum Rules {
    Policies(RbacEngine),
    Matcher(RbacMatcher),
}

impl Engine {
    fn new(rules: Rules) -> Engine {
        let names: Vec<&str> = match &rules {
            Rules::Policies(e) => e.policy_names().collect(),
            Rules::Matcher(m) => m.policy_names().collect(),
        };
        let details = names.iter().map(|name| static_details(&common_rbac::denied_details(Some(name)))).collect();
        Engine { rules, details }
    }

    fn decide<'a>(&'a self, input: &RbacInput<'_>) -> Decision<'a> {
        match &self.rules {
            Rules::Policies(e) => e.decide(input),
            Rules::Matcher(m) => m.decide(input),
        }
    }

    fn details(&self, decision: &Decision<'_>) -> &'static str {
        decision
            .policy
            .and_then(|(i, _)| self.details.get(i).copied())
            .unwrap_or("rbac_access_denied_matched_policy[none]")
    }
}

impl RbacConfig {
    fn from_proto(proto: &RbacProto, path: &FieldPath) -> Result<RbacConfig, ConfigError> {
        type RulesProto = envoy_types::pb::envoy::config::rbac::v3::Rbac;
        type MatcherProto = envoy_types::pb::xds::r#type::matcher::v3::Matcher;
        let engine = |rules: &Option<RulesProto>, rules_field: &str, matcher: &Option<MatcherProto>, matcher_field| {
            let rules = match (rules, matcher) {
                (_, Some(m)) => {
                    if rules.is_some() {
                        tracing::warn!("RBAC rules are ignored when matcher is configured");
                    }
                    Rules::Matcher(RbacMatcher::new(m, &path.child(matcher_field))?)
                }
                (Some(r), None) => Rules::Policies(RbacEngine::new(r, &path.child(rules_field))?),
                (None, None) => return Ok(None),
            };
            Ok::<_, ConfigError>(Some(Engine::new(rules)))
        };
        Ok(RbacConfig {
            enforced: engine(&proto.rules, "rules", &proto.matcher, "matcher")?,
            shadow: engine(&proto.shadow_rules, "shadow_rules", &proto.shadow_matcher, "shadow_matcher")?,
            rules_prefix: proto.rules_stat_prefix.clone(),
            shadow_prefix: proto.shadow_rules_stat_prefix.clone(),
        })
    }
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let proto: RbacProto = decode_any(any, path)?;
    let config = RbacConfig::from_proto(&proto, path)?;
    // Envoy joins each prefix to the names with a dot unless it ends with one.
    let base = format!("http.{}.rbac.", ctx.hcm_stat_prefix);
    let scope = |prefix: &str| common_rbac::rules_scope(&base, prefix);
    Ok(Arc::new(RbacFilterFactory {
        stats: Arc::new(RbacStats::new(ctx.store, &scope(&proto.rules_stat_prefix))),
        shadow_stats: Arc::new(RbacShadowStats::new(ctx.store, &scope(&proto.shadow_rules_stat_prefix))),
        config: Arc::new(config),
        name: ctx.filter_name.into(),
    }))
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let proto: RbacPerRoute = decode_any(any, path)?;
    let config = match &proto.rbac {
        Some(rbac) => RbacConfig::from_proto(rbac, &path.child("rbac"))?,
        None => RbacConfig { enforced: None, shadow: None, rules_prefix: String::new(), shadow_prefix: String::new() },
    };
    Ok(Arc::new(config))
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct RbacFilterFactory {
    config: Arc<RbacConfig>,
    stats: Arc<RbacStats>,
    shadow_stats: Arc<RbacShadowStats>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl StreamFilterFactory for RbacFilterFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(RbacFilter {
            config: self.config.clone(),
            stats: self.stats.clone(),
            shadow_stats: self.shadow_stats.clone(),
            name: self.name.clone(),
        })
    }
}

struct RbacFilter {
    config: Arc<RbacConfig>,
    stats: Arc<RbacStats>,
    shadow_stats: Arc<RbacShadowStats>,
    name: Arc<str>,
}

impl StreamFilter for RbacFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let config = cx.route.and_then(|r| r.per_filter_config::<RbacConfig>(&self.name)).unwrap_or(&self.config);
        if config.enforced.is_none() && config.shadow.is_none() {
            return FilterStatus::Continue;
        }
        let info = &*cx.info;
        let input = RbacInput {
            parts: Some(parts),
            remote: info.downstream_remote,
            direct_remote: info.downstream_remote,
            local: info.downstream_local,
            tls: info.downstream_tls.as_deref(),
            requested_server_name: info.downstream_hello.as_ref().and_then(|h| h.server_name.as_deref()).unwrap_or(""),
        };
        let mut metadata = Struct::default();
        if let Some(shadow) = &config.shadow {
            let decision = shadow.decide(&input);
            let counter =
                if decision.allowed { &self.shadow_stats.shadow_allowed } else { &self.shadow_stats.shadow_denied };
            counter.inc();
            record(&mut metadata, &config.shadow_prefix, "shadow", &decision);
        }
        let refusal = config.enforced.as_ref().and_then(|enforced| {
            let decision = enforced.decide(&input);
            record(&mut metadata, &config.rules_prefix, "enforced", &decision);
            if decision.allowed {
                self.stats.allowed.inc();
                None
            } else {
                self.stats.denied.inc();
                Some(enforced.details(&decision))
            }
        });
        cx.info.dynamic_metadata.set_fields(NAME, metadata);
        match refusal {
            Some(details) => {
                FilterStatus::LocalReply(LocalReply::new(StatusCode::FORBIDDEN, "RBAC: access denied", details))
            }
            None => FilterStatus::Continue,
        }
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (
        CONFIG_TYPE,
        &["rules", "matcher", "rules_stat_prefix", "shadow_rules", "shadow_matcher", "shadow_rules_stat_prefix"],
    ),
    (PER_ROUTE_TYPE, &["rbac"]),
    // A `matcher`'s action (`matcher_engine`).
    (ACTION_TYPE, &["name", "action"]),
];
