//! The route table: Envoy's `RouteConfiguration` compiled once on the main thread and
//! shared read-only by every worker (`Arc<RouteTable>`).
//!
//! `find` picks the virtual host from the request's host (see `virtual_host`), then
//! the first of its routes whose match holds. Route-configuration-level header edits
//! and per-filter configs are folded into each route at load, so the router reads
//! everything it needs from the `Route` it gets back.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{CorsPolicy as RouteCorsPolicy, RouteConfiguration};
use envoy_types::pb::google::protobuf::Any;
use http::request::Parts;
use http::HeaderName;

use super::header_mutation::HeaderEdits;
use super::per_filter;
use super::request;
use super::route::{Route, RouteAction};
use super::route_action::ClusterSelector;
use super::supported;
use super::virtual_host::{ConfigLevel, DomainIndex, VirtualHost};
use super::PerRouteConfig;
use crate::config::supported::Inventory;
use crate::config::{ConfigError, FieldPath};

// The route's parts the router filter works with, reachable from here too.
pub use super::retry_policy::{RetryOn, RetryPolicy};
pub use super::route_action::ForwardAction;

/// Envoy's default `max_direct_response_body_size_bytes`.
pub const DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES: u32 = 4096;

/// Decodes a `typed_per_filter_config` entry: given the filter name, the `Any` and
/// its path, the filter's per-route config, `Ok(None)` when the entry can be
/// ignored, or an error (unknown filter type, bad config).
pub type PerRouteDecoder<'a> = dyn Fn(&str, &Any, &FieldPath) -> Result<Option<PerRouteConfig>, ConfigError> + 'a;

/// Compiles a virtual host's deprecated `cors` for the CORS filter, which owns the
/// policy type (the router keeps it type-erased, as it does filter configs).
pub type VhostCorsDecoder<'a> = dyn Fn(&RouteCorsPolicy, &FieldPath) -> Result<PerRouteConfig, ConfigError> + 'a;

/// What building a route table needs from its connection manager.
pub struct RouteBuildContext<'a> {
    pub per_route: &'a PerRouteDecoder<'a>,
    /// `None` where no CORS filter is at hand: a virtual host's `cors` is then an error.
    pub vhost_cors: Option<&'a VhostCorsDecoder<'a>>,
    /// Whether a cluster of this name exists, for `validate_clusters`; `None`
    /// where no cluster manager is at hand (a table built on its own).
    pub cluster_exists: Option<&'a dyn Fn(&str) -> bool>,
    /// What the configuration is checked against: Courier's whole inventory
    /// (`extensions::supported::INVENTORY`), which sees every extension.
    pub inventory: &'a Inventory,
}

/// A compiled `RouteConfiguration`.
#[derive(Debug)]
pub struct RouteTable {
    name: String,
    virtual_hosts: Vec<VirtualHost>,
    domains: DomainIndex,
    ignore_port_in_host_matching: bool,
    vhost_header: Option<HeaderName>,
}

impl RouteTable {
    /// Compiles `rc`; `path` points at the `RouteConfiguration` (e.g.
    /// `...typed_config.route_config`).
    pub fn from_proto(
        rc: &RouteConfiguration,
        path: &FieldPath,
        ctx: &RouteBuildContext<'_>,
    ) -> Result<RouteTable, ConfigError> {
        supported::check(rc, path, ctx.inventory)?;
        let request_edits = Arc::new(HeaderEdits::from_proto(
            &rc.request_headers_to_add,
            &rc.request_headers_to_remove,
            path,
            "request_headers_to_add",
            "request_headers_to_remove",
        )?);
        let response_edits = Arc::new(HeaderEdits::from_proto(
            &rc.response_headers_to_add,
            &rc.response_headers_to_remove,
            path,
            "response_headers_to_add",
            "response_headers_to_remove",
        )?);
        let config_per_filter = per_filter::decode(&rc.typed_per_filter_config, path, ctx)?;
        let level = ConfigLevel {
            request_edits: &request_edits,
            response_edits: &response_edits,
            per_filter: &config_per_filter,
            most_specific_header_mutations_wins: rc.most_specific_header_mutations_wins,
            ignore_path_parameters: rc.ignore_path_parameters_in_path_matching,
            max_direct_response_body_bytes: rc
                .max_direct_response_body_size_bytes
                .as_ref()
                .map_or(DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES, |v| v.value),
        };
        let vhost_header =
            if rc.vhost_header.is_empty() {
                None
            } else {
                Some(HeaderName::from_bytes(rc.vhost_header.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    path.field_error("vhost_header", format!("invalid header name '{}'", rc.vhost_header))
                })?)
            };

        let names: Vec<String> = rc.virtual_hosts.iter().map(|vh| vh.name.clone()).collect();
        let mut virtual_hosts = Vec::with_capacity(rc.virtual_hosts.len());
        let mut domains = DomainIndex::default();
        for (i, vh) in rc.virtual_hosts.iter().enumerate() {
            let mut p = path.clone();
            p.push_field("virtual_hosts");
            p.push_index(i);
            virtual_hosts.push(VirtualHost::from_proto(vh, &p, &level, ctx)?);
            for (j, domain) in vh.domains.iter().enumerate() {
                let mut dp = p.clone();
                dp.push_field("domains");
                dp.push_index(j);
                domains.insert(domain, i, &names, &dp)?;
            }
        }
        let table = RouteTable {
            name: rc.name.clone(),
            virtual_hosts,
            domains,
            ignore_port_in_host_matching: rc.ignore_port_in_host_matching,
            vhost_header,
        };
        // Envoy's default for a route configuration given inline (not by RDS), which
        // is the only kind Courier has: a route to an unknown cluster fails the load.
        if rc.validate_clusters.as_ref().is_none_or(|b| b.value) {
            if let Some(exists) = ctx.cluster_exists {
                table.check_clusters(exists, path)?;
            }
        }
        Ok(table)
    }

    /// Envoy's `validate_clusters`: every cluster a route names (`cluster`, and each
    /// of `weighted_clusters`; a `cluster_header` names none) must exist, among a
    /// virtual host's `routes`. As in Envoy, a `matcher`'s routes are not checked
    /// (one naming an unknown cluster answers 503 `NC`).
    fn check_clusters(&self, exists: &dyn Fn(&str) -> bool, path: &FieldPath) -> Result<(), ConfigError> {
        let routes = self.virtual_hosts.iter().enumerate().flat_map(|(i, vh)| {
            vh.routes.iter().enumerate().map(move |(j, route)| {
                let mut p = path.clone();
                p.push_field("virtual_hosts");
                p.push_index(i);
                p.push_field("routes");
                p.push_index(j);
                (p, route)
            })
        });
        for (route_path, route) in routes {
            let RouteAction::Forward(f) = &route.action else { continue };
            let at = |field: &str| {
                let mut p = route_path.clone();
                p.push_field("route");
                p.push_field(field);
                p
            };
            match &f.cluster {
                ClusterSelector::Name(name) if !exists(name) => {
                    return Err(at("cluster").error(format!("route: unknown cluster '{name}'")));
                }
                ClusterSelector::Weighted { clusters, .. } => {
                    if let Some(k) = clusters.iter().position(|(name, _)| !exists(name)) {
                        let mut p = at("weighted_clusters");
                        p.push_field("clusters");
                        p.push_index(k);
                        p.push_field("name");
                        return Err(p.error(format!("route: unknown weighted cluster '{}'", clusters[k].0)));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The route for a request, or `None` (Envoy's 404 with `NR`). The host is
    /// `:authority` (the URI's authority, else `Host`), or the `vhost_header`.
    pub fn find(&self, parts: &Parts) -> Option<&Arc<Route>> {
        let vhost = self.virtual_host(parts)?;
        self.virtual_hosts.get(vhost)?.find(parts)
    }

    fn virtual_host(&self, parts: &Parts) -> Option<usize> {
        if self.domains.only_default() {
            return self.domains.default_vhost();
        }
        let host = match &self.vhost_header {
            Some(h) => parts.headers.get(h).and_then(|v| v.to_str().ok())?,
            None => request::authority(parts)?,
        };
        let host = match request::port_start(host) {
            Some(i) if self.ignore_port_in_host_matching => &host[..i],
            _ => host,
        };
        self.domains.find(&host.to_ascii_lowercase())
    }

    /// The configuration's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Virtual host names in config order (for stats and admin).
    pub fn virtual_host_names(&self) -> impl Iterator<Item = &str> {
        self.virtual_hosts.iter().map(|vh| vh.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::test_util::{request, table, test_per_route, try_route_config, try_table, TEST_INVENTORY};
    use envoy_types::pb::google::protobuf::Any;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn table_is_shareable() {
        assert_send_sync::<RouteTable>();
        assert_send_sync::<Arc<Route>>();
    }

    #[test]
    fn first_matching_route_wins() {
        let t = table(
            "name: rc\nvirtual_hosts: [{name: v, domains: ['*'], routes: [\
               {name: first, match: {prefix: /a}, route: {cluster: one}},\
               {name: second, match: {prefix: /a/b}, route: {cluster: two}},\
               {name: third, match: {prefix: /}, route: {cluster: three}}]}]",
        );
        let name = |uri: &str| t.find(&request("h", uri, &[])).map(|r| r.name.clone());
        assert_eq!(name("/a/b").as_deref(), Some("first"));
        assert_eq!(name("/b").as_deref(), Some("third"));
        assert_eq!(name("/a").as_deref(), Some("first"));
        assert_eq!(name("/a/c").as_deref(), Some("first"));
    }

    #[test]
    fn no_route_is_none() {
        let t =
            table("virtual_hosts: [{name: v, domains: [a.com], routes: [{match: {path: /x}, route: {cluster: c}}]}]");
        assert!(t.find(&request("a.com", "/y", &[])).is_none());
        assert!(t.find(&request("b.com", "/x", &[])).is_none());
        assert!(t.find(&request("a.com", "/x", &[])).is_some());
    }

    #[test]
    fn authority_from_absolute_uri_and_vhost_header() {
        let t = table(
            "virtual_hosts: [{name: a, domains: [a.com], routes: [{match: {prefix: /}, route: {cluster: c}}]},\
                             {name: b, domains: [b.com], routes: [{match: {prefix: /}, route: {cluster: c}}]}]",
        );
        let parts = request("a.com", "http://b.com/x", &[]);
        assert_eq!(t.find(&parts).map(|r| r.virtual_host_name.as_str()), Some("b"));
        let t = table(
            "vhost_header: X-Vhost\nvirtual_hosts: [{name: a, domains: [a.com], routes: [{match: {prefix: /}, route: {cluster: c}}]}]",
        );
        assert!(t.find(&request("a.com", "/", &[])).is_none());
        assert!(t.find(&request("z.com", "/", &[("x-vhost", "A.com")])).is_some());
    }

    #[test]
    fn header_mutations_fold_levels_in_envoys_order() {
        let yaml = |wins: bool| {
            format!(
                "most_specific_header_mutations_wins: {wins}\n\
                 request_headers_to_add: [{{header: {{key: x-level, value: config}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}]\n\
                 response_headers_to_add: [{{header: {{key: x-resp, value: config}}}}]\n\
                 virtual_hosts: [{{name: v, domains: ['*'],\
                   request_headers_to_add: [{{header: {{key: x-level, value: vhost}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}],\
                   routes: [{{match: {{prefix: /}}, route: {{cluster: c}},\
                     request_headers_to_add: [{{header: {{key: x-level, value: route}}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}}],\
                     response_headers_to_remove: [x-secret]}}]}}]"
            )
        };
        let info = crate::stream_info::StreamInfo::new(
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            "HTTP/1.1",
        );
        for (wins, expected) in [(false, "config"), (true, "route")] {
            let t = table(&yaml(wins));
            let route = t.find(&request("h", "/", &[])).expect("route").clone();
            let mut parts = request("h", "/", &[]);
            route.request_headers.apply_to_request(&mut parts, &info);
            assert_eq!(parts.headers.get("x-level").and_then(|v| v.to_str().ok()), Some(expected));
            let mut resp = http::HeaderMap::new();
            resp.insert("x-secret", "s".parse().expect("value"));
            route.response_headers.apply_to_response(&mut resp, Some(&parts), &info);
            assert!(!resp.contains_key("x-secret"));
            assert_eq!(resp.get("x-resp").and_then(|v| v.to_str().ok()), Some("config"));
        }
        let t =
            table("virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c}}]}]");
        let route = t.find(&request("h", "/", &[])).expect("route");
        assert!(route.request_headers.is_empty() && route.response_headers.is_empty());
    }

    #[test]
    fn per_filter_configs_override_by_level() {
        let t = table(
            "typed_per_filter_config: {f1: {'@type': type.googleapis.com/google.protobuf.StringValue, value: config},\
                                       f2: {'@type': type.googleapis.com/google.protobuf.StringValue, value: config}}\n\
             virtual_hosts: [{name: v, domains: ['*'],\
               typed_per_filter_config: {f2: {'@type': type.googleapis.com/google.protobuf.StringValue, value: vhost},\
                                         f3: {'@type': type.googleapis.com/google.protobuf.StringValue, value: vhost}},\
               routes: [{match: {prefix: /}, route: {cluster: c},\
                 typed_per_filter_config: {f3: {'@type': type.googleapis.com/google.protobuf.StringValue, value: route}}}]}]",
        );
        let route = t.find(&request("h", "/", &[])).expect("route");
        assert_eq!(route.per_filter_config::<String>("f1").map(String::as_str), Some("config"));
        assert_eq!(route.per_filter_config::<String>("f2").map(String::as_str), Some("vhost"));
        assert_eq!(route.per_filter_config::<String>("f3").map(String::as_str), Some("route"));
        assert_eq!(route.per_filter_config::<u32>("f3"), None, "wrong type");
        assert_eq!(route.per_filter_config::<String>("f4"), None);
        let all = |f: &str| route.per_filter_configs::<String>(f).map(String::as_str).collect::<Vec<_>>();
        assert_eq!(all("f2"), ["vhost", "config"]);
        assert_eq!(all("f3"), ["route", "vhost"]);
        assert_eq!(all("f4"), Vec::<&str>::new());
    }

    #[test]
    fn per_filter_errors_and_ignorable_entries() {
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c},\
               typed_per_filter_config: {bad: {'@type': type.googleapis.com/google.protobuf.UInt32Value, value: 1}}}]}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].typed_per_filter_config[\"bad\"].@type");
        let rc = try_route_config(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c},\
               typed_per_filter_config: {skip: {'@type': type.googleapis.com/google.protobuf.UInt32Value, value: 1}}}]}]",
        )
        .expect("valid");
        let ignore_u32 = |name: &str, any: &Any, path: &FieldPath| {
            if any.type_url.ends_with("UInt32Value") {
                Ok(None)
            } else {
                test_per_route(name, any, path)
            }
        };
        let t = RouteTable::from_proto(
            &rc,
            &FieldPath::new(),
            &RouteBuildContext {
                per_route: &ignore_u32,
                vhost_cors: None,
                cluster_exists: None,
                inventory: &TEST_INVENTORY,
            },
        )
        .expect("valid");
        assert!(t.find(&request("h", "/", &[])).expect("route").per_filter.is_empty());
    }

    #[test]
    fn unsupported_fields_are_errors_with_paths() {
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c, hash_policy: [{header: {header_name: x}}]}}]}]",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "route_config.virtual_hosts[0].routes[0].route.hash_policy: field 'hash_policy' of envoy.config.route.v3.RouteAction is not supported by Courier"
        );
        let e = try_table("internal_only_headers: [x-a]\nvirtual_hosts: []").unwrap_err();
        assert_eq!(e.path, "route_config.internal_only_headers");
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], virtual_clusters: [{name: vc, headers: [{name: x}]}], routes: []}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].virtual_clusters");
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /, headers: [{name: x, string_match: {safe_regex: {regex: '['}}}]}, route: {cluster: c}}]}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex");
        assert!(e.reason.starts_with("invalid regex: "));
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c}}, {match: {safe_regex: {regex: '('}}, route: {cluster: c}}, {match: {prefix: /}, route: {cluster: c}}]}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[1].match.safe_regex.regex");
    }

    #[test]
    fn validate_clusters_refuses_a_route_to_an_unknown_cluster() {
        let rc = |validate: &str, named: &str| {
            crate::router::test_util::try_route_config(&format!(
                "{validate}virtual_hosts: [{{name: v, domains: ['*'], routes: [\
                   {{match: {{prefix: /h}}, route: {{cluster_header: x-c}}}},\
                   {{match: {{prefix: /a}}, route: {{cluster: {named}}}}},\
                   {{match: {{prefix: /}}, route: {{weighted_clusters: {{clusters: [{{name: known, weight: 1}}, {{name: gone, weight: 1}}]}}}}}}]}}]"
            ))
            .expect("valid")
        };
        let exists = |name: &str| name == "known";
        let build = |rc: &RouteConfiguration| {
            let ctx = RouteBuildContext {
                per_route: &test_per_route,
                vhost_cors: None,
                cluster_exists: Some(&exists),
                inventory: &TEST_INVENTORY,
            };
            RouteTable::from_proto(rc, &FieldPath::starting_at("route_config"), &ctx)
        };
        let e = build(&rc("", "known")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "route_config.virtual_hosts[0].routes[2].route.weighted_clusters.clusters[1].name: \
             route: unknown weighted cluster 'gone'"
        );
        build(&rc("validate_clusters: false\n", "missing")).expect("not validated");
        let e = build(&rc("", "missing")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "route_config.virtual_hosts[0].routes[1].route.cluster: route: unknown cluster 'missing'"
        );
    }
}
