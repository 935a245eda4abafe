//! One compiled route (Envoy's `Route`): its match, its action (forward, redirect or
//! direct response), and everything it inherits from its virtual host and route
//! configuration, folded in at load so a worker reads a single `Arc<Route>`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{data_source::Specifier, DataSource};
use envoy_types::pb::envoy::config::route::v3::{route::Action, DirectResponseAction, Route as RouteProto};
use http::request::Parts;
use http::StatusCode;

use super::config::RouteBuildContext;
use super::header_mutation::{HeaderEdits, HeaderMutation};
use super::matcher::RouteMatcher;
use super::per_filter::{self, PerFilterConfigs};
use super::redirect::RedirectAction;
use super::retry_policy::RetryPolicy;
use super::route_action::ForwardAction;
use super::PerRouteConfig;
use crate::config::{ConfigError, FieldPath};
use crate::runtime::Fraction;
use crate::tracing::{CustomTag, RouteTracing, Sampling};

/// What a route does with a request it matched.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Boxed: far larger than the other actions.
    Forward(Box<ForwardAction>),
    Redirect(RedirectAction),
    DirectResponse {
        status: StatusCode,
        body: Bytes,
    },
}

/// A route, ready for the router.
pub struct Route {
    pub name: String,
    pub virtual_host_name: String,
    pub action: RouteAction,
    /// Route, virtual host and route configuration request header edits, in order.
    pub request_headers: HeaderMutation,
    /// Route, virtual host and route configuration response header edits, in order.
    pub response_headers: HeaderMutation,
    /// `typed_per_filter_config` by filter name: the route's, else the virtual
    /// host's, else the route configuration's.
    pub per_filter: HashMap<String, PerRouteConfig>,
    /// The virtual host's deprecated `cors`, which the CORS filter reads when no
    /// level has a policy in `typed_per_filter_config`.
    pub vhost_cors: Option<PerRouteConfig>,
    /// Every level's `typed_per_filter_config` by filter name, most specific first.
    per_filter_levels: HashMap<String, Vec<PerRouteConfig>>,
    pub(super) matcher: RouteMatcher,
    /// `decorator`: the tracing span's operation name, and `propagate` (default
    /// true). Acts only under a connection manager with `tracing`.
    pub decorator: Option<(String, bool)>,
    /// `tracing`: the route's sampling and tags, under a connection manager with
    /// `tracing`.
    pub tracing: Option<Box<RouteTracing>>,
}

/// What a route inherits from its virtual host and route configuration.
pub(crate) struct Enclosing<'a> {
    pub virtual_host_name: &'a str,
    pub vhost_retry_policy: Option<&'a RetryPolicy>,
    /// The virtual host's `include_request_attempt_count`.
    pub include_request_attempt_count: bool,
    pub vhost_request_edits: &'a Arc<HeaderEdits>,
    pub vhost_response_edits: &'a Arc<HeaderEdits>,
    pub vhost_per_filter: &'a PerFilterConfigs,
    pub vhost_cors: Option<&'a PerRouteConfig>,
    pub config_request_edits: &'a Arc<HeaderEdits>,
    pub config_response_edits: &'a Arc<HeaderEdits>,
    pub config_per_filter: &'a PerFilterConfigs,
    pub most_specific_header_mutations_wins: bool,
    pub ignore_path_parameters: bool,
    pub max_direct_response_body_bytes: u32,
}

/// A route's `tracing`; `path` points at the route. Its percentages are
/// `FractionalPercent`s, each 100 % when unset (not the connection manager's).
fn route_tracing(
    t: &envoy_types::pb::envoy::config::route::v3::Tracing,
    path: &FieldPath,
) -> Result<RouteTracing, ConfigError> {
    let percent = |p: &Option<envoy_types::pb::envoy::r#type::v3::FractionalPercent>| match p {
        Some(p) => Fraction { numerator: u64::from(p.numerator), denominator: Fraction::denominator_of(p.denominator) },
        None => Fraction::HUNDRED,
    };
    let mut p = path.clone();
    p.push_field("tracing");
    p.push_field("custom_tags");
    Ok(RouteTracing {
        sampling: Sampling {
            client: percent(&t.client_sampling),
            random: percent(&t.random_sampling),
            overall: percent(&t.overall_sampling),
        },
        custom_tags: CustomTag::all_from_proto(&t.custom_tags, &p)?,
    })
}

impl Route {
    /// Compiles `r`; `path` points at it.
    pub(crate) fn from_proto(
        r: &RouteProto,
        path: &FieldPath,
        enclosing: &Enclosing<'_>,
        ctx: &RouteBuildContext<'_>,
    ) -> Result<Route, ConfigError> {
        let mut match_path = path.clone();
        match_path.push_field("match");
        let m = r.r#match.as_ref().ok_or_else(|| match_path.error("value is required"))?;
        let matcher = RouteMatcher::from_proto(m, &match_path, enclosing.ignore_path_parameters)?;

        let action = match &r.action {
            Some(Action::Route(ra)) => {
                let mut p = path.clone();
                p.push_field("route");
                RouteAction::Forward(Box::new(ForwardAction::from_proto(
                    ra,
                    &p,
                    enclosing.vhost_retry_policy,
                    enclosing.include_request_attempt_count,
                )?))
            }
            Some(Action::Redirect(ra)) => {
                let mut p = path.clone();
                p.push_field("redirect");
                RouteAction::Redirect(RedirectAction::from_proto(ra, &p)?)
            }
            Some(Action::DirectResponse(dr)) => {
                let mut p = path.clone();
                p.push_field("direct_response");
                direct_response(dr, &p, enclosing.max_direct_response_body_bytes)?
            }
            Some(Action::FilterAction(_)) => {
                return Err(path.field_error("filter_action", "field 'filter_action' is not supported by Courier"))
            }
            Some(Action::NonForwardingAction(_)) => {
                return Err(path
                    .field_error("non_forwarding_action", "field 'non_forwarding_action' is not supported by Courier"))
            }
            None => return Err(path.error("one of route, redirect or direct_response must be set")),
        };

        let request_edits = Arc::new(HeaderEdits::from_proto(
            &r.request_headers_to_add,
            &r.request_headers_to_remove,
            path,
            "request_headers_to_add",
            "request_headers_to_remove",
        )?);
        let response_edits = Arc::new(HeaderEdits::from_proto(
            &r.response_headers_to_add,
            &r.response_headers_to_remove,
            path,
            "response_headers_to_add",
            "response_headers_to_remove",
        )?);
        let ordered = |route: Arc<HeaderEdits>, vhost: &Arc<HeaderEdits>, config: &Arc<HeaderEdits>| {
            let levels = [route, vhost.clone(), config.clone()];
            if enclosing.most_specific_header_mutations_wins {
                HeaderMutation::from_levels(levels.into_iter().rev())
            } else {
                HeaderMutation::from_levels(levels)
            }
        };
        let own_per_filter = per_filter::decode(&r.typed_per_filter_config, path, ctx)?;

        Ok(Route {
            name: r.name.clone(),
            virtual_host_name: enclosing.virtual_host_name.to_string(),
            action,
            request_headers: ordered(request_edits, enclosing.vhost_request_edits, enclosing.config_request_edits),
            response_headers: ordered(response_edits, enclosing.vhost_response_edits, enclosing.config_response_edits),
            per_filter: per_filter::merge(&[enclosing.config_per_filter, enclosing.vhost_per_filter, &own_per_filter]),
            vhost_cors: enclosing.vhost_cors.cloned(),
            per_filter_levels: per_filter::merge_all(&[
                enclosing.config_per_filter,
                enclosing.vhost_per_filter,
                &own_per_filter,
            ]),
            matcher,
            tracing: r.tracing.as_ref().map(|t| route_tracing(t, path)).transpose()?.map(Box::new),
            decorator: r
                .decorator
                .as_ref()
                .map(|d| (d.operation.clone(), d.propagate.as_ref().is_none_or(|b| b.value))),
        })
    }

    /// True when the route's match holds for the request.
    pub(crate) fn matches(&self, parts: &Parts) -> bool {
        self.matcher.matches(parts)
    }

    /// This route's config for `filter_name`, if it has one of type `T`.
    pub fn per_filter_config<T: 'static>(&self, filter_name: &str) -> Option<&T> {
        self.per_filter.get(filter_name).and_then(|c| c.as_ref().downcast_ref::<T>())
    }

    /// Every level's config of type `T` for `filter_name`, most specific first
    /// (route, virtual host, route configuration).
    pub fn per_filter_configs<'a, T: 'static>(&'a self, filter_name: &str) -> impl Iterator<Item = &'a T> + 'a {
        self.per_filter_levels.get(filter_name).into_iter().flatten().filter_map(|c| c.as_ref().downcast_ref::<T>())
    }

    /// The path and query to send upstream after the route's `prefix_rewrite` or
    /// `regex_rewrite`; `None` when the route rewrites nothing (or does not forward).
    pub fn rewrite_path(&self, path_and_query: &str) -> Option<String> {
        match &self.action {
            RouteAction::Forward(f) => {
                let rewrite = f.path_rewrite.as_ref()?;
                Some(rewrite.apply(path_and_query, self.matcher.matched_len(path_and_query)))
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut filters: Vec<&String> = self.per_filter.keys().collect();
        filters.sort();
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("virtual_host_name", &self.virtual_host_name)
            .field("matcher", &self.matcher)
            .field("action", &self.action)
            .field("request_headers", &self.request_headers)
            .field("response_headers", &self.response_headers)
            .field("per_filter", &filters)
            .finish()
    }
}

fn direct_response(dr: &DirectResponseAction, path: &FieldPath, max_body: u32) -> Result<RouteAction, ConfigError> {
    let status = u16::try_from(dr.status)
        .ok()
        .filter(|s| (200..600).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| path.field_error("status", "value must be inside range [200, 600)"))?;
    if dr.body_format.is_some() {
        return Err(path.field_error("body_format", "field 'body_format' is not supported by Courier"));
    }
    let body = match &dr.body {
        None => Bytes::new(),
        Some(ds) => {
            let mut p = path.clone();
            p.push_field("body");
            data_source(ds, &p, max_body)?
        }
    };
    Ok(RouteAction::DirectResponse { status, body })
}

/// Reads a direct response body, at most `max` bytes (Envoy's limit and wording).
fn data_source(ds: &DataSource, path: &FieldPath, max: u32) -> Result<Bytes, ConfigError> {
    if ds.watched_directory.is_some() {
        return Err(path.field_error("watched_directory", "field 'watched_directory' is not supported by Courier"));
    }
    let body: Vec<u8> = match &ds.specifier {
        None => Vec::new(),
        Some(Specifier::Filename(f)) => {
            let p = {
                let mut p = path.clone();
                p.push_field("filename");
                p
            };
            let meta = std::fs::metadata(f).map_err(|_| p.error(format!("response body file {f} does not exist")))?;
            if meta.len() > u64::from(max) {
                return Err(p.error(format!("response body file {f} size is {} bytes; maximum is {max}", meta.len())));
            }
            std::fs::read(f).map_err(|e| p.error(format!("cannot read response body file {f}: {e}")))?
        }
        Some(Specifier::InlineBytes(b)) => b.clone(),
        Some(Specifier::InlineString(s)) => s.clone().into_bytes(),
        Some(Specifier::EnvironmentVariable(name)) => std::env::var(name)
            .map_err(|_| path.field_error("environment_variable", format!("environment variable '{name}' is not set")))?
            .into_bytes(),
    };
    if body.len() as u64 > u64::from(max) {
        return Err(path.error(format!("response body size is {} bytes; maximum is {max}", body.len())));
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::test_util::{request, table, try_table};

    fn one_route(route: &str) -> Result<crate::router::RouteTable, ConfigError> {
        try_table(&format!("virtual_hosts: [{{name: v, domains: ['*'], routes: [{route}]}}]"))
    }

    fn direct(route: &str) -> (StatusCode, Bytes) {
        let t = one_route(route).expect("valid");
        match &t.find(&request("h", "/", &[])).expect("route").action {
            RouteAction::DirectResponse { status, body } => (*status, body.clone()),
            other => panic!("not a direct response: {other:?}"),
        }
    }

    #[test]
    fn direct_responses() {
        assert_eq!(
            direct("{match: {prefix: /}, direct_response: {status: 204}}"),
            (StatusCode::NO_CONTENT, Bytes::new())
        );
        assert_eq!(
            direct("{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: hello}}}"),
            (StatusCode::OK, Bytes::from_static(b"hello"))
        );
        assert_eq!(
            direct("{match: {prefix: /}, direct_response: {status: 503, body: {inline_bytes: aGk=}}}"),
            (StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(b"hi"))
        );
        let file = std::env::temp_dir().join(format!("courier-direct-{}.txt", std::process::id()));
        std::fs::write(&file, "from file").expect("write temp file");
        let got = direct(&format!(
            "{{match: {{prefix: /}}, direct_response: {{status: 200, body: {{filename: '{}'}}}}}}",
            file.display()
        ));
        let _ = std::fs::remove_file(&file);
        assert_eq!(got.1, Bytes::from_static(b"from file"));
    }

    #[test]
    fn direct_response_body_limits() {
        let big = "x".repeat(4097);
        let e = one_route(&format!(
            "{{match: {{prefix: /}}, direct_response: {{status: 200, body: {{inline_string: {big}}}}}}}"
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "route_config.virtual_hosts[0].routes[0].direct_response.body: response body size is 4097 bytes; maximum is 4096");
        let t = try_table(&format!(
            "max_direct_response_body_size_bytes: 5000\nvirtual_hosts: [{{name: v, domains: ['*'], routes: [\
             {{match: {{prefix: /}}, direct_response: {{status: 200, body: {{inline_string: {big}}}}}}}]}}]"
        ));
        assert!(t.is_ok());
        let e =
            one_route("{match: {prefix: /}, direct_response: {status: 200, body: {filename: /nonexistent/courier}}}")
                .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].direct_response.body.filename");
    }

    #[test]
    fn rewrite_path_uses_the_matched_part() {
        let t = table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [\
               {match: {prefix: /api/}, route: {cluster: c, prefix_rewrite: /v2/}},\
               {match: {path: /exact}, route: {cluster: c, prefix_rewrite: /other}},\
               {match: {prefix: /CI, case_sensitive: false}, route: {cluster: c, prefix_rewrite: /ci}},\
               {match: {safe_regex: {regex: '/re/.*'}}, route: {cluster: c, prefix_rewrite: /whole}},\
               {match: {prefix: /svc/}, route: {cluster: c, regex_rewrite: {pattern: {regex: '^/svc/([^/]+)'}, substitution: '/\\1'}}},\
               {match: {prefix: /}, route: {cluster: c}}]}]",
        );
        let rewrite = |uri: &str| t.find(&request("h", uri, &[])).expect("route").rewrite_path(uri);
        assert_eq!(rewrite("/api/users?x=1").as_deref(), Some("/v2/users?x=1"));
        assert_eq!(rewrite("/exact?q").as_deref(), Some("/other?q"));
        assert_eq!(rewrite("/ci/Thing").as_deref(), Some("/ci/Thing"));
        assert_eq!(rewrite("/re/a/b?q").as_deref(), Some("/whole?q"));
        assert_eq!(rewrite("/svc/foo/bar?q=/svc/x").as_deref(), Some("/foo/bar?q=/svc/x"));
        assert_eq!(rewrite("/plain"), None);
    }

    #[test]
    fn route_errors_have_paths() {
        let e = one_route("{match: {prefix: /}, direct_response: {status: 200, body_format: {text_format: x}}}")
            .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].direct_response.body_format");
        let e = one_route("{match: {prefix: /}, non_forwarding_action: {}}").unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].non_forwarding_action");
    }
}
