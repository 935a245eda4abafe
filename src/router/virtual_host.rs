//! Virtual hosts (Envoy's `VirtualHost`) and how a request's host picks one.
//!
//! Domains are matched case-insensitively in Envoy's order: exact names, then suffix
//! wildcards (`*.foo.com`, `*-bar.foo.com`), then prefix wildcards (`foo.*`,
//! `foo-*`), then `*`. Among wildcards the longest wins, and a wildcard never matches
//! the empty string (`*.foo.com` does not match `.foo.com`). A domain may appear in
//! only one virtual host, and only one may have `*`. The host is compared as given,
//! port included, unless the route configuration sets `ignore_port_in_host_matching`
//! (or the connection manager strips the port before routing).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{
    virtual_host::TlsRequirementType, Route as RouteProto, RouteList, VirtualHost as VirtualHostProto,
};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use http::request::Parts;
use prost_reflect::DynamicMessage;

use super::config::RouteBuildContext;
use super::header_mutation::HeaderEdits;
use super::matching_data::HttpMatchingData;
use super::per_filter;
use super::retry_policy::RetryPolicy;
use super::route::{Enclosing, Route};
use super::PerRouteConfig;
use crate::config::bootstrap::decode_any;
use crate::config::{descriptor, supported, ConfigError, FieldPath};
use crate::matcher::{InputKinds, MatchResult, Matcher};

const ROUTE_TYPE: &str = "envoy.config.route.v3.Route";
const ROUTE_LIST_TYPE: &str = "envoy.config.route.v3.RouteList";

/// The `Any`s a virtual host's `matcher` may hold as actions.
pub const MATCHER_ACTION_TYPES: &[&str] = &[ROUTE_TYPE, ROUTE_LIST_TYPE];

/// A virtual host's routes, in config order, or its `matcher` (Envoy's generic
/// matching API over request headers, whose actions are routes).
#[derive(Debug)]
pub(crate) struct VirtualHost {
    pub(crate) name: String,
    pub(crate) routes: Vec<Arc<Route>>,
    matcher: Option<Matcher<RouteMatchAction>>,
}

/// A `matcher`'s action: a `Route`, or a `RouteList` tried in order. The route
/// found must also match on its own `match`, as in Envoy.
#[derive(Debug)]
enum RouteMatchAction {
    Route(Arc<Route>),
    List(Vec<Arc<Route>>),
}

/// What every virtual host inherits from the route configuration.
pub(crate) struct ConfigLevel<'a> {
    pub request_edits: &'a Arc<HeaderEdits>,
    pub response_edits: &'a Arc<HeaderEdits>,
    pub per_filter: &'a per_filter::PerFilterConfigs,
    pub most_specific_header_mutations_wins: bool,
    pub ignore_path_parameters: bool,
    pub max_direct_response_body_bytes: u32,
}

impl VirtualHost {
    /// Compiles `vh`; `path` points at it.
    pub(crate) fn from_proto(
        vh: &VirtualHostProto,
        path: &FieldPath,
        config: &ConfigLevel<'_>,
        ctx: &RouteBuildContext<'_>,
    ) -> Result<VirtualHost, ConfigError> {
        if vh.matcher.is_some() && !vh.routes.is_empty() {
            return Err(path.error("cannot set both matcher and routes on virtual host"));
        }
        if vh.require_tls != TlsRequirementType::None as i32 {
            return Err(path.field_error("require_tls", "field 'require_tls' is not supported by Courier"));
        }
        let retry_policy = match &vh.retry_policy {
            Some(rp) => {
                let mut p = path.clone();
                p.push_field("retry_policy");
                Some(RetryPolicy::from_proto(rp, &p)?)
            }
            None => None,
        };
        let request_edits = Arc::new(HeaderEdits::from_proto(
            &vh.request_headers_to_add,
            &vh.request_headers_to_remove,
            path,
            "request_headers_to_add",
            "request_headers_to_remove",
        )?);
        let response_edits = Arc::new(HeaderEdits::from_proto(
            &vh.response_headers_to_add,
            &vh.response_headers_to_remove,
            path,
            "response_headers_to_add",
            "response_headers_to_remove",
        )?);
        let vhost_per_filter = per_filter::decode(&vh.typed_per_filter_config, path, ctx)?;
        let vhost_cors = vhost_cors(vh, path, ctx)?;
        let enclosing = Enclosing {
            virtual_host_name: &vh.name,
            vhost_retry_policy: retry_policy.as_ref(),
            include_request_attempt_count: vh.include_request_attempt_count,
            vhost_request_edits: &request_edits,
            vhost_response_edits: &response_edits,
            vhost_per_filter: &vhost_per_filter,
            vhost_cors: vhost_cors.as_ref(),
            config_request_edits: config.request_edits,
            config_response_edits: config.response_edits,
            config_per_filter: config.per_filter,
            most_specific_header_mutations_wins: config.most_specific_header_mutations_wins,
            ignore_path_parameters: config.ignore_path_parameters,
            max_direct_response_body_bytes: config.max_direct_response_body_bytes,
        };
        let mut routes = Vec::with_capacity(vh.routes.len());
        for (i, r) in vh.routes.iter().enumerate() {
            let mut p = path.clone();
            p.push_field("routes");
            p.push_index(i);
            routes.push(Arc::new(Route::from_proto(r, &p, &enclosing, ctx)?));
        }
        let matcher = match &vh.matcher {
            Some(m) => {
                let mut build =
                    |action: &TypedExtensionConfig, at: &FieldPath| route_action(action, at, &enclosing, ctx);
                Some(Matcher::from_proto(m, &path.child("matcher"), InputKinds::RequestHeaders, &mut build)?)
            }
            None => None,
        };
        Ok(VirtualHost { name: vh.name.clone(), routes, matcher })
    }

    /// The route for a request to this virtual host: the first of `routes` that
    /// matches, or the one its `matcher` finds if that route's own `match` holds.
    pub(crate) fn find(&self, parts: &Parts) -> Option<&Arc<Route>> {
        let Some(matcher) = &self.matcher else {
            return self.routes.iter().find(|r| r.matches(parts));
        };
        match matcher.find(&HttpMatchingData::request(parts)) {
            MatchResult::Matched(RouteMatchAction::Route(r)) => Some(r).filter(|r| r.matches(parts)),
            MatchResult::Matched(RouteMatchAction::List(routes)) => routes.iter().find(|r| r.matches(parts)),
            MatchResult::NoMatch | MatchResult::InsufficientData => None,
        }
    }
}

/// Compiles one of `matcher`'s actions (a `Route` or a `RouteList`), checked
/// against Courier's inventory as the routes of `routes` are; `path` points at the
/// `TypedExtensionConfig`.
fn route_action(
    action: &TypedExtensionConfig,
    path: &FieldPath,
    enclosing: &Enclosing<'_>,
    ctx: &RouteBuildContext<'_>,
) -> Result<RouteMatchAction, ConfigError> {
    let any = action.typed_config.as_ref().ok_or_else(|| path.field_error("typed_config", "value is required"))?;
    let at = path.child("typed_config");
    let type_name = descriptor::type_name(&any.type_url);
    if !MATCHER_ACTION_TYPES.contains(&type_name) {
        return Err(at.field_error(
            "@type",
            format!("action '{}' is not supported here (a route or a route list)", any.type_url),
        ));
    }
    let desc = descriptor::message(type_name).ok_or_else(|| at.error(format!("unknown type '{type_name}'")))?;
    let msg = DynamicMessage::decode(desc, any.value.as_slice())
        .map_err(|e| at.error(format!("cannot decode '{}': {e}", any.type_url)))?;
    supported::check_message(ctx.inventory, &msg, &at)?;
    let route = |r: &RouteProto, p: &FieldPath| Route::from_proto(r, p, enclosing, ctx).map(Arc::new);
    if type_name == ROUTE_TYPE {
        return Ok(RouteMatchAction::Route(route(&decode_any::<RouteProto>(any, &at)?, &at)?));
    }
    let list: RouteList = decode_any(any, &at)?;
    let mut p = at.child("routes");
    let mut routes = Vec::with_capacity(list.routes.len());
    for (i, r) in list.routes.iter().enumerate() {
        p.push_index(i);
        routes.push(route(r, &p)?);
        p.pop();
    }
    Ok(RouteMatchAction::List(routes))
}

/// Wildcards of one kind grouped by length, longest first.
type Wildcards = BTreeMap<Reverse<usize>, HashMap<String, usize>>;

/// Domain → virtual host index.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    exact: HashMap<String, usize>,
    /// `*.foo.com` stored as `.foo.com`.
    suffixes: Wildcards,
    /// `foo.*` stored as `foo.`.
    prefixes: Wildcards,
    default: Option<usize>,
    /// The domain as written and its virtual host, for duplicate errors.
    seen: HashMap<String, usize>,
}

impl DomainIndex {
    /// Adds `domain` for virtual host `vhost`; `names` are the virtual hosts' names
    /// and `path` points at the domain.
    pub(crate) fn insert(
        &mut self,
        domain: &str,
        vhost: usize,
        names: &[String],
        path: &FieldPath,
    ) -> Result<(), ConfigError> {
        let d = domain.to_ascii_lowercase();
        if let Some(&other) = self.seen.get(&d) {
            let other = names.get(other).map_or("", String::as_str);
            return Err(if d == "*" {
                path.error(format!("only one virtual host may have the domain '*' (already in virtual host '{other}')"))
            } else {
                path.error(format!(
                    "Only unique values for domains are permitted. Duplicate entry of domain {d} (already in virtual host '{other}')"
                ))
            });
        }
        self.seen.insert(d.clone(), vhost);
        if d == "*" {
            self.default = Some(vhost);
        } else if let Some(suffix) = d.strip_prefix('*') {
            self.suffixes.entry(Reverse(suffix.len())).or_default().insert(suffix.to_string(), vhost);
        } else if let Some(prefix) = d.strip_suffix('*') {
            self.prefixes.entry(Reverse(prefix.len())).or_default().insert(prefix.to_string(), vhost);
        } else {
            self.exact.insert(d, vhost);
        }
        Ok(())
    }

    /// True when `*` is the only domain.
    pub(crate) fn only_default(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty()
    }

    pub(crate) fn default_vhost(&self) -> Option<usize> {
        self.default
    }

    /// The virtual host for `host` (already lower-cased).
    pub(crate) fn find(&self, host: &str) -> Option<usize> {
        if let Some(&v) = self.exact.get(host) {
            return Some(v);
        }
        longest_wildcard(&self.suffixes, host, Wildcard::Suffix)
            .or_else(|| longest_wildcard(&self.prefixes, host, Wildcard::Prefix))
            .or(self.default)
    }
}

#[derive(Clone, Copy)]
enum Wildcard {
    Suffix,
    Prefix,
}

/// The longest wildcard of `groups` matching `host`; a wildcard must stand for at
/// least one character, so only texts shorter than `host` are tried.
fn longest_wildcard(groups: &Wildcards, host: &str, kind: Wildcard) -> Option<usize> {
    for (Reverse(len), by_text) in groups {
        if *len >= host.len() {
            continue;
        }
        let part = match kind {
            Wildcard::Suffix => host.get(host.len() - len..),
            Wildcard::Prefix => host.get(..*len),
        };
        if let Some(&vhost) = part.and_then(|p| by_text.get(p)) {
            return Some(vhost);
        }
    }
    None
}

/// The deprecated `cors`, still honoured by Envoy 1.40 (with a deprecation warning).
#[allow(deprecated)]
fn vhost_cors(
    vh: &VirtualHostProto,
    path: &FieldPath,
    ctx: &RouteBuildContext<'_>,
) -> Result<Option<PerRouteConfig>, ConfigError> {
    let Some(cors) = &vh.cors else { return Ok(None) };
    let mut p = path.clone();
    p.push_field("cors");
    let decode = ctx.vhost_cors.ok_or_else(|| p.error("a virtual host's cors needs the CORS filter"))?;
    decode(cors, &p).map(Some)
}

#[cfg(test)]
mod tests {
    use crate::router::test_util::{request, table, try_table};

    fn vhost_for(t: &crate::router::RouteTable, host: &str) -> Option<String> {
        t.find(&request(host, "/", &[])).map(|r| r.virtual_host_name.clone())
    }

    fn vh(name: &str, domains: &str) -> String {
        format!("{{name: {name}, domains: {domains}, routes: [{{match: {{prefix: /}}, route: {{cluster: c}}}}]}}")
    }

    #[test]
    fn domain_precedence_exact_suffix_prefix_default() {
        let t = table(&format!(
            "virtual_hosts: [{}, {}, {}, {}, {}, {}]",
            vh("exact", "[www.foo.com]"),
            vh("suffix", "['*.foo.com']"),
            vh("longer_suffix", "['*-bar.foo.com']"),
            vh("prefix", "['www.*']"),
            vh("longer_prefix", "['www.foo.*']"),
            vh("default", "['*']"),
        ));
        assert_eq!(vhost_for(&t, "www.foo.com").as_deref(), Some("exact"));
        assert_eq!(vhost_for(&t, "api.foo.com").as_deref(), Some("suffix"));
        assert_eq!(vhost_for(&t, "baz-bar.foo.com").as_deref(), Some("longer_suffix"));
        assert_eq!(vhost_for(&t, "www.foo.org").as_deref(), Some("longer_prefix"));
        assert_eq!(vhost_for(&t, "www.example.org").as_deref(), Some("prefix"));
        assert_eq!(vhost_for(&t, "other.org").as_deref(), Some("default"));
        // Suffix beats prefix even when the prefix is longer.
        assert_eq!(vhost_for(&t, "www.foo.foo.com").as_deref(), Some("suffix"));
    }

    #[test]
    fn case_insensitive_and_no_empty_wildcard_match() {
        let t = table(&format!(
            "virtual_hosts: [{}, {}, {}]",
            vh("exact", "[WWW.Foo.com]"),
            vh("suffix", "['*-bar.foo.com']"),
            vh("prefix", "['foo-*']")
        ));
        assert_eq!(vhost_for(&t, "www.FOO.com").as_deref(), Some("exact"));
        assert_eq!(vhost_for(&t, "X-BAR.foo.com").as_deref(), Some("suffix"));
        assert_eq!(vhost_for(&t, "-bar.foo.com"), None, "the wildcard does not match the empty string");
        assert_eq!(vhost_for(&t, "foo-"), None);
        assert_eq!(vhost_for(&t, "foo-x").as_deref(), Some("prefix"));
    }

    #[test]
    fn ports_are_part_of_the_host_unless_ignored() {
        let yaml = format!("virtual_hosts: [{}, {}]", vh("plain", "[foo.com]"), vh("with_port", "['foo.com:8080']"));
        let t = table(&yaml);
        assert_eq!(vhost_for(&t, "foo.com").as_deref(), Some("plain"));
        assert_eq!(vhost_for(&t, "foo.com:8080").as_deref(), Some("with_port"));
        assert_eq!(vhost_for(&t, "foo.com:9090"), None);
        let t = table(&format!("ignore_port_in_host_matching: true\nvirtual_hosts: [{}]", vh("plain", "[foo.com]")));
        assert_eq!(vhost_for(&t, "foo.com:9090").as_deref(), Some("plain"));
        assert_eq!(vhost_for(&t, "[::1]:9090"), None);
    }

    #[test]
    fn only_a_default_vhost_matches_without_a_host() {
        let t = table(&format!("virtual_hosts: [{}]", vh("default", "['*']")));
        let parts = http::Request::builder().uri("/").body(()).expect("request").into_parts().0;
        assert_eq!(t.find(&parts).map(|r| r.virtual_host_name.as_str()), Some("default"));
        let t = table(&format!("virtual_hosts: [{}, {}]", vh("default", "['*']"), vh("a", "[a.com]")));
        assert!(t.find(&parts).is_none());
    }

    #[test]
    fn duplicate_domains_are_errors() {
        let e =
            try_table(&format!("virtual_hosts: [{}, {}]", vh("a", "[x.com]"), vh("b", "[y.com, X.com]"))).unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[1].domains[1]");
        assert!(e.reason.contains("Duplicate entry of domain x.com (already in virtual host 'a')"), "{}", e.reason);
        let e = try_table(&format!("virtual_hosts: [{}, {}]", vh("a", "['*']"), vh("b", "['*']"))).unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[1].domains[0]");
        let e = try_table(&format!("virtual_hosts: [{}]", vh("a", "['*.x.com', '*.x.com']"))).unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].domains[1]");
    }
}
