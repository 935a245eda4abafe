//! The requirement tree (`JwtRequirement`) and the rules choosing one per request.
//!
//! A requirement names a provider (optionally with its own audiences), combines
//! others (`requires_any`: the first to pass wins, tried in order; `requires_all`:
//! each in order, the first failure decides), or lets a request through without a
//! token (`allow_missing`) or even with a bad one (`allow_missing_or_failed`).
//! Rules are tried in order; each matches as a route's `match` does (the router's
//! matcher), and the first that matches gives the requirement, which may be
//! none (`requires` unset): the request is then allowed unchecked.

use std::collections::HashMap;

use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{JwtRequirement, RequirementRule};

use super::provider::sanitize_audience;
use crate::config::{ConfigError, FieldPath};
use crate::router::RouteMatcher;

#[derive(Debug, Clone)]
pub enum Requirement {
    /// The index of a provider, and the audiences that replace its own.
    Provider {
        provider: usize,
        audiences: Option<Vec<String>>,
    },
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    AllowMissingOrFailed,
    AllowMissing,
}

/// Providers by name, to their index in the filter's (sorted) list.
pub type ProviderIndex = HashMap<String, usize>;

fn provider(name: &str, providers: &ProviderIndex, path: &FieldPath, field: &str) -> Result<usize, ConfigError> {
    providers
        .get(name)
        .copied()
        .ok_or_else(|| path.field_error(field, format!("Required provider ['{name}'] is not configured.")))
}

impl Requirement {
    pub fn from_proto(
        r: &JwtRequirement,
        providers: &ProviderIndex,
        path: &FieldPath,
    ) -> Result<Requirement, ConfigError> {
        let list = |rs: &[JwtRequirement], field: &str| -> Result<Vec<Requirement>, ConfigError> {
            let lp = path.child(field);
            if rs.len() < 2 {
                return Err(lp.field_error("requirements", "value must contain at least 2 item(s)"));
            }
            rs.iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut p = lp.child("requirements");
                    p.push_index(i);
                    Requirement::from_proto(r, providers, &p)
                })
                .collect()
        };
        Ok(match &r.requires_type {
            Some(RequiresType::ProviderName(name)) => {
                Requirement::Provider { provider: provider(name, providers, path, "provider_name")?, audiences: None }
            }
            Some(RequiresType::ProviderAndAudiences(pa)) => Requirement::Provider {
                provider: provider(
                    &pa.provider_name,
                    providers,
                    &path.child("provider_and_audiences"),
                    "provider_name",
                )?,
                audiences: Some(pa.audiences.iter().map(|a| sanitize_audience(a).to_string()).collect()),
            },
            Some(RequiresType::RequiresAny(any)) => Requirement::Any(list(&any.requirements, "requires_any")?),
            Some(RequiresType::RequiresAll(all)) => Requirement::All(list(&all.requirements, "requires_all")?),
            Some(RequiresType::AllowMissingOrFailed(_)) => Requirement::AllowMissingOrFailed,
            Some(RequiresType::AllowMissing(_)) => Requirement::AllowMissing,
            // The supported-fields check refused the others.
            _ => return Err(path.error("one of the requirement types must be set")),
        })
    }
}

/// Envoy's words for a `requirement_name` that `requirement_map` lacks (at load
/// for a rule, per request for a route's `PerRouteConfig`).
pub fn unknown_requirement(name: &str, named: &HashMap<String, Requirement>) -> String {
    let mut names: Vec<&str> = named.keys().map(String::as_str).collect();
    names.sort_unstable();
    format!("Wrong requirement_name: {name}. It should be one of [{}]", names.join(","))
}

/// A compiled `RequirementRule`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub matcher: RouteMatcher,
    pub requirement: Option<Requirement>,
}

impl Rule {
    pub fn from_proto(
        r: &RequirementRule,
        providers: &ProviderIndex,
        named: &HashMap<String, Requirement>,
        path: &FieldPath,
    ) -> Result<Rule, ConfigError> {
        let Some(m) = &r.r#match else { return Err(path.field_error("match", "value is required")) };
        let matcher = RouteMatcher::from_proto(m, &path.child("match"), false)?;
        let requirement = match &r.requirement_type {
            None => None,
            Some(RequirementType::Requires(req)) => {
                Some(Requirement::from_proto(req, providers, &path.child("requires"))?)
            }
            Some(RequirementType::RequirementName(name)) => match named.get(name) {
                Some(r) => Some(r.clone()),
                None => return Err(path.field_error("requirement_name", unknown_requirement(name, named))),
            },
        };
        Ok(Rule { matcher, requirement })
    }
}
