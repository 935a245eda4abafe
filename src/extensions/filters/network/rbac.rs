//! `envoy.filters.network.rbac`: allows or closes a connection by Envoy's RBAC
//! policies (`filters::common::rbac`), on the connection's facts alone:
//! addresses and ports, the SNI the TLS inspector read, the client
//! certificate of a terminated TLS session. There is no request at this level:
//! a header rule is refused at start-up, as Envoy does, and `url_path` never
//! matches.
//!
//! As Envoy 1.40 (tests/compat `network_rbac*`): the decision is taken on the
//! connection's first read (`ONE_TIME_ON_FIRST_BYTE`, once; `CONTINUOUS`: on
//! each read), the end of stream counting as one, so a `tcp_proxy` after it has
//! already connected upstream, and its upstream sees a refused connection open
//! and close empty. A refused connection closes at once, or, with `delay_deny`,
//! reads nothing more and closes after the delay, with connection termination
//! details `rbac_access_denied_matched_policy[<policy>|none]`. Counters
//! `<stat_prefix>.rbac.allowed` / `denied` count enforced decisions,
//! `<stat_prefix>.rbac.<shadow_rules_stat_prefix>.shadow_allowed` /
//! `shadow_denied` the shadow ones, whose result alone goes into the
//! connection's dynamic metadata (`envoy.filters.network.rbac`:
//! `<shadow_rules_stat_prefix>shadow_engine_result` and
//! `..._effective_policy_id`).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::rbac::v3::permission::Rule as PermissionRule;
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal, Rbac as RbacRules};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::{rbac::EnforcementType, Rbac as RbacProto};
use envoy_types::pb::google::protobuf::{Any, Struct};

use crate::config::{self, bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::filters::common::rbac::{self as common_rbac, RbacEngine, RbacInput};
use crate::extensions::{FactoryContext, NetworkFilterExtension};
use crate::network::{NetworkFilter, ReadFilter, ReadFilterContext, ReadFilterFactory, ReadFilterStatus};
use crate::stats::Store;

pub const NAME: &str = "envoy.filters.network.rbac";
const CONFIG_TYPE: &str = "envoy.extensions.filters.network.rbac.v3.RBAC";

pub const EXTENSION: NetworkFilterExtension = NetworkFilterExtension { name: NAME, config_type: CONFIG_TYPE, create };

define_stats! {
    /// `<stat_prefix>.rbac.*`.
    #[derive(Debug)]
    pub struct NetworkRbacStats {
        counter allowed,
        counter denied,
    }
}

define_stats! {
    /// `<stat_prefix>.rbac.<shadow_rules_stat_prefix>.shadow_*`.
    #[derive(Debug)]
    pub struct NetworkRbacShadowStats {
        counter shadow_allowed,
        counter shadow_denied,
    }
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
struct RbacConfig {
    enforced: Option<RbacEngine>,
    shadow: Option<RbacEngine>,
    /// `shadow_rules_stat_prefix`, which prefixes the metadata keys as is.
    shadow_prefix: String,
    continuous: bool,
    /// `delay_deny`; `None`: a refused connection closes at once.
    delay_deny: Option<Duration>,
    stats: NetworkRbacStats,
    shadow_stats: NetworkRbacShadowStats,
}

#[derive(Debug)]
struct RbacFilterFactory(Arc<RbacConfig>);

fn create(any: &Any, path: &FieldPath, ctx: &FactoryContext<'_>) -> Result<NetworkFilter, ConfigError> {
    let proto: RbacProto = decode_any(any, path)?;
    build(&proto, path, ctx.store).map(|config| NetworkFilter::Read(Arc::new(RbacFilterFactory(Arc::new(config)))))
}

fn build(proto: &RbacProto, path: &FieldPath, store: &Store) -> Result<RbacConfig, ConfigError> {
    if proto.stat_prefix.is_empty() {
        return Err(path.field_error("stat_prefix", "value length must be at least 1 characters"));
    }
    let engine = |rules: &Option<RbacRules>, field: &str| {
        let Some(rules) = rules else { return Ok(None) };
        let at = path.child(field);
        refuse_headers(rules, &at)?;
        RbacEngine::new(rules, &at).map(Some)
    };
    let continuous = match EnforcementType::try_from(proto.enforcement_type) {
        Ok(EnforcementType::OneTimeOnFirstByte) => false,
        Ok(EnforcementType::Continuous) => true,
        Err(_) => return Err(path.field_error("enforcement_type", "unknown enforcement type")),
    };
    let delay_deny = proto.delay_deny.as_ref().map(config::duration).filter(|d| !d.is_zero());
    let base = common_rbac::join_prefix(&proto.stat_prefix, "rbac.");
    Ok(RbacConfig {
        enforced: engine(&proto.rules, "rules")?,
        shadow: engine(&proto.shadow_rules, "shadow_rules")?,
        shadow_prefix: proto.shadow_rules_stat_prefix.clone(),
        continuous,
        delay_deny,
        stats: NetworkRbacStats::new(store, &base),
        shadow_stats: NetworkRbacShadowStats::new(
            store,
            &common_rbac::rules_scope(&base, &proto.shadow_rules_stat_prefix),
        ),
    })
}

/// Envoy refuses a header rule anywhere in a network filter's policies.
fn refuse_headers(rules: &RbacRules, path: &FieldPath) -> Result<(), ConfigError> {
    let mut names: Vec<&String> = rules.policies.keys().collect();
    names.sort();
    for name in names {
        let policy = &rules.policies[name];
        let mut base = path.child("policies");
        base.push_key(name);
        for (i, p) in policy.permissions.iter().enumerate() {
            permission_headers(p, &indexed(&base, "permissions", i))?;
        }
        for (i, p) in policy.principals.iter().enumerate() {
            principal_headers(p, &indexed(&base, "principals", i))?;
        }
    }
    Ok(())
}

fn indexed(path: &FieldPath, field: &str, i: usize) -> FieldPath {
    let mut at = path.child(field);
    at.push_index(i);
    at
}

fn header_refused(path: &FieldPath) -> ConfigError {
    path.field_error("header", "a header rule is not supported by the RBAC network filter")
}

fn permission_headers(p: &Permission, path: &FieldPath) -> Result<(), ConfigError> {
    let set = |rules: &[Permission], field: &str| {
        let at = path.child(field);
        rules.iter().enumerate().try_for_each(|(i, r)| permission_headers(r, &indexed(&at, "rules", i)))
    };
    match &p.rule {
        Some(PermissionRule::Header(_)) => Err(header_refused(path)),
        Some(PermissionRule::AndRules(s)) => set(&s.rules, "and_rules"),
        Some(PermissionRule::OrRules(s)) => set(&s.rules, "or_rules"),
        Some(PermissionRule::NotRule(inner)) => permission_headers(inner, &path.child("not_rule")),
        _ => Ok(()),
    }
}

fn principal_headers(p: &Principal, path: &FieldPath) -> Result<(), ConfigError> {
    let set = |ids: &[Principal], field: &str| {
        let at = path.child(field);
        ids.iter().enumerate().try_for_each(|(i, id)| principal_headers(id, &indexed(&at, "ids", i)))
    };
    match &p.identifier {
        Some(Identifier::Header(_)) => Err(header_refused(path)),
        Some(Identifier::AndIds(s)) => set(&s.ids, "and_ids"),
        Some(Identifier::OrIds(s)) => set(&s.ids, "or_ids"),
        Some(Identifier::NotId(inner)) => principal_headers(inner, &path.child("not_id")),
        _ => Ok(()),
    }
}

impl ReadFilterFactory for RbacFilterFactory {
    fn create(&self) -> Box<dyn ReadFilter> {
        Box::new(RbacFilter { config: self.0.clone(), decided: Decided::No })
    }
}

/// Where one connection's decision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    No,
    /// Allowed once and for all (`ONE_TIME_ON_FIRST_BYTE`): later reads pass
    /// untouched.
    Allowed,
    Denied,
}

/// One connection's filter.
struct RbacFilter {
    config: Arc<RbacConfig>,
    decided: Decided,
}

impl RbacConfig {
    /// The shadow rules' decision, counted and recorded.
    fn check_shadow(&self, engine: &RbacEngine, input: &RbacInput<'_>, cx: &mut ReadFilterContext<'_>) {
        let decision = engine.decide(input);
        let stats = &self.shadow_stats;
        let counter = if decision.allowed { &stats.shadow_allowed } else { &stats.shadow_denied };
        counter.inc();
        let mut fields = Struct::default();
        common_rbac::record(&mut fields, &self.shadow_prefix, "shadow", &decision);
        cx.dynamic_metadata.set_fields(NAME, fields);
    }

    /// The enforced rules' decision, counted; a refusal's details recorded.
    fn check_enforced(&self, engine: &RbacEngine, input: &RbacInput<'_>, cx: &mut ReadFilterContext<'_>) -> bool {
        let decision = engine.decide(input);
        if decision.allowed {
            self.stats.allowed.inc();
        } else {
            self.stats.denied.inc();
            *cx.termination_details = Some(common_rbac::denied_details(decision.policy.map(|(_, name)| name)));
        }
        decision.allowed
    }
}

impl ReadFilter for RbacFilter {
    fn on_data(&mut self, _data: &[u8], _end_stream: bool, cx: &mut ReadFilterContext<'_>) -> ReadFilterStatus {
        match self.decided {
            Decided::Allowed => return ReadFilterStatus::Continue,
            Decided::Denied => return ReadFilterStatus::Close,
            Decided::No => {}
        }
        let config = &*self.config;
        let info = cx.info;
        let input = RbacInput {
            parts: None,
            remote: info.remote,
            direct_remote: info.remote,
            local: info.local,
            tls: info.tls.as_deref(),
            requested_server_name: info.inspected_hello.as_ref().and_then(|h| h.server_name.as_deref()).unwrap_or(""),
        };
        if let Some(shadow) = &config.shadow {
            config.check_shadow(shadow, &input, cx);
        }
        // No enforced rules: allowed, as Envoy's "no engine".
        let allowed = config.enforced.as_ref().is_none_or(|engine| config.check_enforced(engine, &input, cx));
        if allowed {
            // CONTINUOUS decides again on the next read.
            if !config.continuous {
                self.decided = Decided::Allowed;
            }
            return ReadFilterStatus::Continue;
        }
        self.decided = Decided::Denied;
        match config.delay_deny {
            Some(delay) => ReadFilterStatus::CloseAfter(delay),
            None => ReadFilterStatus::Close,
        }
    }
}

pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[(
    CONFIG_TYPE,
    &["rules", "shadow_rules", "shadow_rules_stat_prefix", "stat_prefix", "enforcement_type", "delay_deny"],
)];
