//! Envoy's `RedirectAction`: answer with a 3xx and a `Location` built from the
//! request.
//!
//! The URL is `scheme://host[:port]path`, each part taken from the request unless the
//! action replaces it, as Envoy does:
//! - scheme: `scheme_redirect`, else `https` for `https_redirect`, else the request's
//!   (`x-forwarded-proto`, else the URI's, else `http`);
//! - host: `host_redirect`, else `:authority`; a `port_redirect` replaces any port.
//!   When the scheme changes, an explicit default port of the old scheme (`:80` for
//!   http, `:443` for https) is dropped;
//! - path: `path_redirect` (its own query string, if it has one, replaces the
//!   request's and survives `strip_query`), or the request's path after
//!   `prefix_rewrite` / `regex_rewrite` (see `path_rewrite`), or the request's path;
//!   a missing leading `/` is added, and `strip_query` drops the query string.

use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::RedirectAction as RedirectActionProto;
use http::request::Parts;
use http::StatusCode;

use super::path_rewrite::PathRewrite;
use super::request;
use super::route::Route;
use crate::config::{ConfigError, FieldPath};

#[derive(Debug, Clone)]
enum RedirectPath {
    Unchanged,
    Replace { path: String, has_query: bool },
    Rewrite(PathRewrite),
}

/// A compiled redirect.
#[derive(Debug, Clone)]
pub struct RedirectAction {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: RedirectPath,
    strip_query: bool,
    status: StatusCode,
}

impl RedirectAction {
    /// Compiles `ra`; `path` points at the route's `redirect` field.
    pub fn from_proto(ra: &RedirectActionProto, path: &FieldPath) -> Result<RedirectAction, ConfigError> {
        let scheme = match &ra.scheme_rewrite_specifier {
            Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".to_string()),
            Some(SchemeRewriteSpecifier::HttpsRedirect(false)) | None => None,
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) if s.is_empty() => None,
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.to_ascii_lowercase()),
        };
        let port = match ra.port_redirect {
            0 => None,
            p => Some(
                u16::try_from(p).map_err(|_| path.field_error("port_redirect", format!("{p} is not a valid port")))?,
            ),
        };
        let redirect_path = match &ra.path_rewrite_specifier {
            None => RedirectPath::Unchanged,
            Some(PathRewriteSpecifier::PathRedirect(p)) if p.is_empty() => RedirectPath::Unchanged,
            Some(PathRewriteSpecifier::PathRedirect(p)) => {
                RedirectPath::Replace { path: p.clone(), has_query: p.contains('?') }
            }
            Some(PathRewriteSpecifier::PrefixRewrite(p)) if p.is_empty() => RedirectPath::Unchanged,
            Some(PathRewriteSpecifier::PrefixRewrite(p)) => RedirectPath::Rewrite(PathRewrite::Prefix(p.clone())),
            Some(PathRewriteSpecifier::RegexRewrite(rms)) => {
                let mut p = path.clone();
                p.push_field("regex_rewrite");
                RedirectPath::Rewrite(PathRewrite::regex(rms, &p)?)
            }
            Some(PathRewriteSpecifier::PathRewrite(_)) => {
                return Err(path.field_error("path_rewrite", "field 'path_rewrite' is not supported by Courier"))
            }
        };
        let status = match RedirectResponseCode::try_from(ra.response_code) {
            Ok(RedirectResponseCode::MovedPermanently) => StatusCode::MOVED_PERMANENTLY,
            Ok(RedirectResponseCode::Found) => StatusCode::FOUND,
            Ok(RedirectResponseCode::SeeOther) => StatusCode::SEE_OTHER,
            Ok(RedirectResponseCode::TemporaryRedirect) => StatusCode::TEMPORARY_REDIRECT,
            Ok(RedirectResponseCode::PermanentRedirect) => StatusCode::PERMANENT_REDIRECT,
            Err(_) => {
                return Err(path.field_error("response_code", format!("unknown response code {}", ra.response_code)))
            }
        };
        Ok(RedirectAction {
            scheme,
            host: Some(ra.host_redirect.clone()).filter(|h| !h.is_empty()),
            port,
            path: redirect_path,
            strip_query: ra.strip_query,
            status,
        })
    }

    /// The redirect's status (301 unless configured otherwise).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Location` for the request; `route` is the route that matched it.
    pub fn location(&self, parts: &Parts, route: &Route) -> String {
        let request_scheme = request_scheme(parts);
        let scheme = self.scheme.as_deref().unwrap_or(&request_scheme);
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();

        let host = match &self.host {
            Some(h) if self.port.is_some() => strip_port(h),
            Some(h) => h.as_str(),
            None => {
                let authority = request::authority(parts).unwrap_or("");
                match request::port_start(authority) {
                    Some(i) => {
                        let old_port = &authority[i..];
                        let default_port_of_old_scheme = (request_scheme == "https" && old_port == ":443")
                            || (request_scheme == "http" && old_port == ":80");
                        if self.port.is_some() || (scheme != request_scheme && default_port_of_old_scheme) {
                            &authority[..i]
                        } else {
                            authority
                        }
                    }
                    None => authority,
                }
            }
        };

        let original = request::path_and_query(parts).unwrap_or("/");
        let mut path = match &self.path {
            RedirectPath::Unchanged => original.to_string(),
            RedirectPath::Replace { path, has_query: true } => path.clone(),
            RedirectPath::Replace { path, has_query: false } => match original.find('?') {
                Some(q) => format!("{path}{}", &original[q..]),
                None => path.clone(),
            },
            RedirectPath::Rewrite(rewrite) => rewrite.apply(original, route.matcher.matched_len(original)),
        };
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let keeps_query = matches!(self.path, RedirectPath::Replace { has_query: true, .. });
        if self.strip_query && !keeps_query {
            if let Some(q) = path.find('?') {
                path.truncate(q);
            }
        }
        format!("{scheme}://{host}{port}{path}")
    }
}

/// The request's scheme as Envoy sees it for redirects: `x-forwarded-proto`, else the
/// URI's scheme, else `http`.
fn request_scheme(parts: &Parts) -> String {
    parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| request::scheme(parts).to_ascii_lowercase())
}

fn strip_port(host: &str) -> &str {
    match request::port_start(host) {
        Some(i) => &host[..i],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::super::route::RouteAction;
    use crate::router::test_util::{request, table, try_table};

    /// The `Location` for a request to `host` + `uri` under a route with `match` and
    /// `redirect` (both YAML flow mappings).
    fn location(m: &str, redirect: &str, host: &str, uri: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let t = table(&format!(
            "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {m}, redirect: {redirect}}}]}}]"
        ));
        let parts = request(host, uri, headers);
        let route = t.find(&parts).expect("route");
        match &route.action {
            RouteAction::Redirect(r) => (r.status().as_u16(), r.location(&parts, route)),
            other => panic!("not a redirect: {other:?}"),
        }
    }

    #[test]
    fn host_and_path_redirect() {
        let (status, loc) = location("{prefix: /}", "{host_redirect: new.com}", "old.com", "/a?b=1", &[]);
        assert_eq!(status, 301);
        assert_eq!(loc, "http://new.com/a?b=1");
        let (_, loc) = location("{prefix: /}", "{path_redirect: /new}", "h.com", "/old?b=1", &[]);
        assert_eq!(loc, "http://h.com/new?b=1");
        let (_, loc) = location("{prefix: /}", "{path_redirect: /new, strip_query: true}", "h.com", "/old?b=1", &[]);
        assert_eq!(loc, "http://h.com/new");
        let (_, loc) =
            location("{prefix: /}", "{path_redirect: '/new?foo=1', strip_query: true}", "h.com", "/old?b=1", &[]);
        assert_eq!(loc, "http://h.com/new?foo=1", "path_redirect's own query wins and is kept");
        let (_, loc) = location("{prefix: /}", "{strip_query: true}", "h.com", "/old?b=1", &[]);
        assert_eq!(loc, "http://h.com/old");
    }

    #[test]
    fn prefix_and_regex_rewrite() {
        let (_, loc) = location("{prefix: /old}", "{prefix_rewrite: /new}", "h.com", "/old/x?y=1", &[]);
        assert_eq!(loc, "http://h.com/new/x?y=1");
        let (_, loc) = location("{prefix: /old/}", "{prefix_rewrite: /}", "h.com", "/old/x", &[]);
        assert_eq!(loc, "http://h.com/x");
        let (_, loc) = location(
            "{prefix: /}",
            r"{regex_rewrite: {pattern: {regex: '^/service/([^/]+)(/.*)$'}, substitution: '\2/instance/\1'}}",
            "h.com",
            "/service/foo/v1/api?q",
            &[],
        );
        assert_eq!(loc, "http://h.com/v1/api/instance/foo?q");
    }

    #[test]
    fn https_redirect_drops_the_default_port_of_the_old_scheme() {
        let https = "{https_redirect: true}";
        assert_eq!(location("{prefix: /}", https, "h.com", "/a", &[]).1, "https://h.com/a");
        assert_eq!(location("{prefix: /}", https, "h.com:80", "/a", &[]).1, "https://h.com/a");
        assert_eq!(location("{prefix: /}", https, "h.com:8080", "/a", &[]).1, "https://h.com:8080/a");
        // Already https: nothing changes, not even :443.
        let xfp = [("x-forwarded-proto", "https")];
        assert_eq!(location("{prefix: /}", https, "h.com:443", "/a", &xfp).1, "https://h.com:443/a");
        assert_eq!(location("{prefix: /}", "{scheme_redirect: http}", "h.com:443", "/a", &xfp).1, "http://h.com/a");
        assert_eq!(location("{prefix: /}", "{}", "h.com", "/a", &xfp).1, "https://h.com/a");
        assert_eq!(location("{prefix: /}", https, "[::1]:80", "/a", &[]).1, "https://[::1]/a");
    }

    #[test]
    fn port_redirect_replaces_the_port() {
        let (_, loc) = location("{prefix: /}", "{port_redirect: 8443, https_redirect: true}", "h.com:80", "/a", &[]);
        assert_eq!(loc, "https://h.com:8443/a");
        let (_, loc) = location("{prefix: /}", "{port_redirect: 9000}", "h.com:8080", "/a", &[]);
        assert_eq!(loc, "http://h.com:9000/a");
        let (_, loc) = location("{prefix: /}", "{port_redirect: 9000, host_redirect: 'n.com:1'}", "h.com", "/a", &[]);
        assert_eq!(loc, "http://n.com:9000/a");
    }

    #[test]
    fn response_codes() {
        for (name, code) in [
            ("MOVED_PERMANENTLY", 301),
            ("FOUND", 302),
            ("SEE_OTHER", 303),
            ("TEMPORARY_REDIRECT", 307),
            ("PERMANENT_REDIRECT", 308),
        ] {
            let (status, _) = location("{prefix: /}", &format!("{{response_code: {name}}}"), "h", "/", &[]);
            assert_eq!(status, code, "{name}");
        }
    }

    #[test]
    fn errors() {
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, redirect: {port_redirect: 70000}}]}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].redirect.port_redirect");
        let e = try_table(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, \
             redirect: {regex_rewrite: {pattern: {regex: 'a'}, substitution: '\\1'}}}]}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "route_config.virtual_hosts[0].routes[0].redirect.regex_rewrite.substitution");
    }
}
