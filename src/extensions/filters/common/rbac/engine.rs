//! Envoy's role-based access control engine (`envoy.config.rbac.v3.RBAC`): named
//! policies, each a set of permissions (what is asked) and principals (who asks);
//! a policy matches a request when one of its permissions and one of its
//! principals do. With `ALLOW` a request is allowed when some policy matches,
//! with `DENY` when none does. Policies are tried in name order, as Envoy keeps
//! them, and the first that matches is the effective one.
//!
//! Rules read the request head and the connection's facts (`RbacInput`); the
//! kinds Courier does not read (metadata, filter state, CEL conditions, URI
//! templates) are refused by the supported-fields check before this. The HTTP
//! filter and the network filter share it: at network level there is no request
//! (`parts: None`), and, as in Envoy (which hands the engine an empty header
//! map there), a header rule sees every header missing and `url_path` never
//! matches.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::permission::Rule as PbRule;
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier as PbId;
use envoy_types::pb::envoy::config::rbac::v3::rbac::Action;
use envoy_types::pb::envoy::config::rbac::v3::{Permission as PbPermission, Principal as PbPrincipal, Rbac};
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule as PbPathRule;
use envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher;

use crate::config::{ConfigError, FieldPath};
use crate::matcher::string_matcher::StringMatcher;
use crate::network::tls::DownstreamTlsInfo;
use crate::network::Cidr;
use crate::router::HeaderMatcher;

/// What the rules read of one request.
pub struct RbacInput<'a> {
    /// The request head; `None` for the network filter.
    pub parts: Option<&'a http::request::Parts>,
    /// The client as the connection manager sees it (`remote_ip`).
    pub remote: SocketAddr,
    /// The connection's peer (`direct_remote_ip`, `source_ip`).
    pub direct_remote: SocketAddr,
    /// Where the client connected (`destination_ip`, `destination_port`).
    pub local: SocketAddr,
    pub tls: Option<&'a DownstreamTlsInfo>,
    /// The connection's SNI as the TLS inspector read it; empty without one.
    pub requested_server_name: &'a str,
}

/// A compiled `RBAC`: its action and its policies in name order.
#[derive(Debug)]
pub struct RbacEngine {
    allow: bool,
    policies: Vec<(String, Policy)>,
}

#[derive(Debug)]
struct Policy {
    permissions: Vec<Permission>,
    principals: Vec<Principal>,
}

#[derive(Debug)]
enum Permission {
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Any,
    Header(HeaderMatcher),
    UrlPath(StringMatcher),
    DestinationIp(Cidr),
    DestinationPort(u32),
    /// `[start, end)`.
    DestinationPortRange(i64, i64),
    Not(Box<Permission>),
    RequestedServerName(StringMatcher),
}

#[derive(Debug)]
enum Principal {
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Any,
    /// `None`: any client with a certificate.
    Authenticated(Option<StringMatcher>),
    DirectRemoteIp(Cidr),
    RemoteIp(Cidr),
    Header(HeaderMatcher),
    UrlPath(StringMatcher),
    Not(Box<Principal>),
}

/// What the engine decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub allowed: bool,
    /// The first policy (by name) that matched: its index in name order, and
    /// its name.
    pub policy: Option<(usize, &'a str)>,
}

impl RbacEngine {
    /// Compiles `rbac`; `path` points at it.
    pub fn new(rbac: &Rbac, path: &FieldPath) -> Result<RbacEngine, ConfigError> {
        let allow = match Action::try_from(rbac.action) {
            Ok(Action::Allow) => true,
            Ok(Action::Deny) => false,
            _ => return Err(path.field_error("action", "only ALLOW and DENY are supported by Courier")),
        };
        let mut names: Vec<&String> = rbac.policies.keys().collect();
        names.sort();
        let mut policies = Vec::with_capacity(names.len());
        for name in names {
            let policy = &rbac.policies[name];
            let mut at = path.child("policies");
            at.push_key(name);
            let list = |field: &str| {
                let mut p = at.clone();
                p.push_field(field);
                p
            };
            let permissions = indexed(&policy.permissions, &list("permissions"), permission)?;
            let principals = indexed(&policy.principals, &list("principals"), principal)?;
            policies.push((name.clone(), Policy { permissions, principals }));
        }
        Ok(RbacEngine { allow, policies })
    }

    pub fn decide(&self, input: &RbacInput<'_>) -> Decision<'_> {
        let policy = self.policies.iter().enumerate().find_map(|(i, (name, p))| {
            let matched =
                p.permissions.iter().any(|r| r.matches(input)) && p.principals.iter().any(|id| id.matches(input));
            matched.then_some((i, name.as_str()))
        });
        Decision { allowed: policy.is_some() == self.allow, policy }
    }

    /// The policies' names, in the order `Decision::policy` indexes them.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|(name, _)| name.as_str())
    }
}

/// Compiles each of `items`, the error naming its index.
fn indexed<P, T>(
    items: &[P],
    path: &FieldPath,
    compile: fn(&P, &FieldPath) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut at = path.clone();
            at.push_index(i);
            compile(item, &at)
        })
        .collect()
}

fn cidr(range: &CidrRange, path: &FieldPath, field: &str) -> Result<Cidr, ConfigError> {
    Cidr::parse(range).map_err(|e| path.field_error(field, e))
}

fn path_matcher(m: &PathMatcher, path: &FieldPath) -> Result<StringMatcher, ConfigError> {
    let mut at = path.child("url_path");
    match &m.rule {
        Some(PbPathRule::Path(sm)) => {
            at.push_field("path");
            StringMatcher::from_proto(sm, &at)
        }
        None => Err(at.error("path is required")),
    }
}

fn permission(p: &PbPermission, path: &FieldPath) -> Result<Permission, ConfigError> {
    let set = |rules: &[PbPermission], field: &str| {
        let mut at = path.child(field);
        at.push_field("rules");
        indexed(rules, &at, permission)
    };
    Ok(match &p.rule {
        Some(PbRule::AndRules(s)) => Permission::And(set(&s.rules, "and_rules")?),
        Some(PbRule::OrRules(s)) => Permission::Or(set(&s.rules, "or_rules")?),
        Some(PbRule::Any(_)) => Permission::Any,
        Some(PbRule::Header(h)) => Permission::Header(HeaderMatcher::from_proto(h, &path.child("header"))?),
        Some(PbRule::UrlPath(m)) => Permission::UrlPath(path_matcher(m, path)?),
        Some(PbRule::DestinationIp(r)) => Permission::DestinationIp(cidr(r, path, "destination_ip")?),
        Some(PbRule::DestinationPort(port)) => Permission::DestinationPort(*port),
        Some(PbRule::DestinationPortRange(r)) => Permission::DestinationPortRange(r.start.into(), r.end.into()),
        Some(PbRule::NotRule(inner)) => Permission::Not(Box::new(permission(inner, &path.child("not_rule"))?)),
        Some(PbRule::RequestedServerName(sm)) => {
            Permission::RequestedServerName(StringMatcher::from_proto(sm, &path.child("requested_server_name"))?)
        }
        // Refused by the supported-fields check; an empty rule matches nothing.
        _ => return Err(path.error("this permission rule is not supported by Courier")),
    })
}

#[allow(deprecated)] // `source_ip` is Envoy's deprecated `direct_remote_ip`
fn principal(p: &PbPrincipal, path: &FieldPath) -> Result<Principal, ConfigError> {
    let set = |ids: &[PbPrincipal], field: &str| {
        let mut at = path.child(field);
        at.push_field("ids");
        indexed(ids, &at, principal)
    };
    Ok(match &p.identifier {
        Some(PbId::AndIds(s)) => Principal::And(set(&s.ids, "and_ids")?),
        Some(PbId::OrIds(s)) => Principal::Or(set(&s.ids, "or_ids")?),
        Some(PbId::Any(_)) => Principal::Any,
        Some(PbId::Authenticated(a)) => Principal::Authenticated(match &a.principal_name {
            Some(sm) => {
                let mut at = path.child("authenticated");
                at.push_field("principal_name");
                Some(StringMatcher::from_proto(sm, &at)?)
            }
            None => None,
        }),
        Some(PbId::SourceIp(r)) => Principal::DirectRemoteIp(cidr(r, path, "source_ip")?),
        Some(PbId::DirectRemoteIp(r)) => Principal::DirectRemoteIp(cidr(r, path, "direct_remote_ip")?),
        Some(PbId::RemoteIp(r)) => Principal::RemoteIp(cidr(r, path, "remote_ip")?),
        Some(PbId::Header(h)) => Principal::Header(HeaderMatcher::from_proto(h, &path.child("header"))?),
        Some(PbId::UrlPath(m)) => Principal::UrlPath(path_matcher(m, path)?),
        Some(PbId::NotId(inner)) => Principal::Not(Box::new(principal(inner, &path.child("not_id"))?)),
        _ => return Err(path.error("this principal is not supported by Courier")),
    })
}

/// Whether `m` matches the request's path without its query; never without a
/// request (Envoy's path matcher refuses a header map with no `:path`).
fn path_matches(m: &StringMatcher, input: &RbacInput<'_>) -> bool {
    input.parts.is_some_and(|parts| m.matches(parts.uri.path()))
}

/// Whether `h` matches the request's headers, or, without a request, headers
/// where it is missing.
fn header_matches(h: &HeaderMatcher, input: &RbacInput<'_>) -> bool {
    match input.parts {
        Some(parts) => h.matches(parts),
        None => h.matches_missing(),
    }
}

impl Permission {
    fn matches(&self, input: &RbacInput<'_>) -> bool {
        match self {
            Permission::And(rules) => rules.iter().all(|r| r.matches(input)),
            Permission::Or(rules) => rules.iter().any(|r| r.matches(input)),
            Permission::Any => true,
            Permission::Header(h) => header_matches(h, input),
            Permission::UrlPath(m) => path_matches(m, input),
            Permission::DestinationIp(c) => c.contains(input.local.ip()),
            Permission::DestinationPort(port) => u32::from(input.local.port()) == *port,
            Permission::DestinationPortRange(start, end) => (*start..*end).contains(&i64::from(input.local.port())),
            Permission::Not(inner) => !inner.matches(input),
            Permission::RequestedServerName(m) => m.matches(input.requested_server_name),
        }
    }
}

impl Principal {
    fn matches(&self, input: &RbacInput<'_>) -> bool {
        match self {
            Principal::And(ids) => ids.iter().all(|id| id.matches(input)),
            Principal::Or(ids) => ids.iter().any(|id| id.matches(input)),
            Principal::Any => true,
            Principal::Authenticated(name) => {
                let Some(peer) = input.tls.and_then(|t| t.peer.as_ref()) else { return false };
                match name {
                    None => true,
                    // Envoy's order: the URI SANs, then the DNS SANs, then the subject.
                    Some(m) => {
                        peer.uri_sans.iter().any(|s| m.matches(s))
                            || peer.dns_sans.iter().any(|s| m.matches(s))
                            || m.matches(&peer.subject)
                    }
                }
            }
            Principal::DirectRemoteIp(c) => c.contains(input.direct_remote.ip()),
            Principal::RemoteIp(c) => c.contains(input.remote.ip()),
            Principal::Header(h) => header_matches(h, input),
            Principal::UrlPath(m) => path_matches(m, input),
            Principal::Not(inner) => !inner.matches(input),
        }
    }
}
