//! A route's `match` (Envoy's `RouteMatch`): one path condition plus header and
//! query parameter conditions, all of which must hold.
//!
//! Path conditions look at `:path` without its query string and fragment (and, with
//! `ignore_path_parameters_in_path_matching`, without each segment's `;parameters`,
//! as Envoy strips them: `/a;v=1/b;x` is matched as `/a/b`):
//! `prefix` (starts with), `path` (equals), `safe_regex` (whole-path regex) and
//! `path_separated_prefix` (equals, or continues with `/`). `case_sensitive: false`
//! folds ASCII case for all but `safe_regex`, as Envoy. A request without a path
//! (CONNECT) matches none of them.
//!
//! The matcher also tells a rewrite how much of `:path` the route matched: the prefix,
//! the exact path, or the whole path (regex).

use envoy_types::pb::envoy::config::route::v3::{route_match::PathSpecifier, RouteMatch};
use http::request::Parts;
use regex::Regex;

use super::header_matcher::{HeaderMatcher, QueryParameterMatcher};
use super::request;
use crate::config::{ConfigError, FieldPath};
use crate::matcher::string_matcher::{full_match_regex, starts_with};
use crate::runtime::RuntimeFraction;

#[derive(Debug, Clone)]
enum PathCondition {
    Prefix(String),
    Exact(String),
    Regex(Regex),
    SeparatedPrefix(String),
}

/// A compiled `RouteMatch`.
#[derive(Debug, Clone)]
pub(crate) struct RouteMatcher {
    path: PathCondition,
    case_sensitive: bool,
    ignore_path_parameters: bool,
    headers: Vec<HeaderMatcher>,
    query_parameters: Vec<QueryParameterMatcher>,
    /// `grpc`: only gRPC requests (by their content-type) match.
    grpc: bool,
    /// `runtime_fraction`: the route matches this fraction of the requests, which
    /// the runtime may change.
    runtime_fraction: Option<RuntimeFraction>,
}

impl RouteMatcher {
    /// Compiles `m`; `path` points at the `match` field.
    pub(crate) fn from_proto(
        m: &RouteMatch,
        path: &FieldPath,
        ignore_path_parameters: bool,
    ) -> Result<RouteMatcher, ConfigError> {
        let condition = match &m.path_specifier {
            Some(PathSpecifier::Prefix(p)) => PathCondition::Prefix(p.clone()),
            Some(PathSpecifier::Path(p)) => PathCondition::Exact(p.clone()),
            Some(PathSpecifier::SafeRegex(rm)) => {
                let mut p = path.clone();
                p.push_field("safe_regex");
                PathCondition::Regex(full_match_regex(rm, &p)?)
            }
            Some(PathSpecifier::PathSeparatedPrefix(p)) => {
                if p.contains(['?', '#']) || p.ends_with('/') || p.is_empty() {
                    return Err(path.field_error(
                        "path_separated_prefix",
                        "value must be non-empty, must not contain '?' or '#' and must not end in '/'",
                    ));
                }
                PathCondition::SeparatedPrefix(p.clone())
            }
            Some(PathSpecifier::ConnectMatcher(_)) => {
                return Err(path.field_error("connect_matcher", "field 'connect_matcher' is not supported by Courier"))
            }
            Some(PathSpecifier::PathMatchPolicy(_)) => {
                return Err(
                    path.field_error("path_match_policy", "field 'path_match_policy' is not supported by Courier")
                )
            }
            None => {
                return Err(path.error("one of prefix, path, safe_regex or path_separated_prefix must be set"));
            }
        };
        let headers = {
            let mut p = path.clone();
            p.push_field("headers");
            HeaderMatcher::list(&m.headers, &p)?
        };
        let mut query_parameters = Vec::with_capacity(m.query_parameters.len());
        for (i, q) in m.query_parameters.iter().enumerate() {
            let mut p = path.clone();
            p.push_field("query_parameters");
            p.push_index(i);
            query_parameters.push(QueryParameterMatcher::from_proto(q, &p)?);
        }
        let case_sensitive = m.case_sensitive.as_ref().is_none_or(|b| b.value);
        let folded = |s: &String| if case_sensitive { s.clone() } else { s.to_ascii_lowercase() };
        let path = match condition {
            PathCondition::Prefix(p) => PathCondition::Prefix(folded(&p)),
            PathCondition::Exact(p) => PathCondition::Exact(folded(&p)),
            PathCondition::SeparatedPrefix(p) => PathCondition::SeparatedPrefix(folded(&p)),
            regex @ PathCondition::Regex(_) => regex,
        };
        let grpc = m.grpc.is_some();
        let runtime_fraction = m.runtime_fraction.as_ref().map(RuntimeFraction::from_proto);
        Ok(RouteMatcher {
            path,
            case_sensitive,
            ignore_path_parameters,
            headers,
            query_parameters,
            grpc,
            runtime_fraction,
        })
    }

    /// True when every condition holds for the request.
    pub(crate) fn matches(&self, parts: &Parts) -> bool {
        let Some(path_and_query) = request::path_and_query(parts) else { return false };
        self.path_matches(path_and_query)
            && (!self.grpc || crate::http::grpc::is_grpc(&parts.headers))
            && HeaderMatcher::all(&self.headers, parts)
            && (self.query_parameters.is_empty() || {
                let query = request::query_string(path_and_query);
                self.query_parameters.iter().all(|q| q.matches(query))
            })
            && self.runtime_fraction.as_ref().is_none_or(RuntimeFraction::enabled)
    }

    fn path_matches(&self, path_and_query: &str) -> bool {
        let path = self.match_path(path_and_query);
        let path = path.as_ref();
        let ignore_case = !self.case_sensitive;
        match &self.path {
            PathCondition::Prefix(prefix) => starts_with(path, prefix, ignore_case),
            PathCondition::Exact(exact) if ignore_case => path.eq_ignore_ascii_case(exact),
            PathCondition::Exact(exact) => path == exact,
            PathCondition::Regex(re) => re.is_match(path),
            PathCondition::SeparatedPrefix(prefix) => {
                starts_with(path, prefix, ignore_case) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
            }
        }
    }

    /// The path the conditions look at; a copy only when parameters are removed.
    fn match_path<'a>(&self, path_and_query: &'a str) -> std::borrow::Cow<'a, str> {
        let path = request::strip_query_and_fragment(path_and_query);
        if !self.ignore_path_parameters || !path.contains(';') {
            return path.into();
        }
        let segments: Vec<&str> = path.split('/').map(|s| s.split(';').next().unwrap_or(s)).collect();
        segments.join("/").into()
    }

    /// How many leading bytes of `path_and_query` a prefix rewrite replaces.
    pub(crate) fn matched_len(&self, path_and_query: &str) -> usize {
        match &self.path {
            PathCondition::Prefix(p) | PathCondition::Exact(p) | PathCondition::SeparatedPrefix(p) => {
                p.len().min(path_and_query.len())
            }
            PathCondition::Regex(_) => request::strip_query_and_fragment(path_and_query).len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::test_util::route_config;

    fn matcher(yaml_match: &str) -> RouteMatcher {
        let rc = route_config(&format!(
            "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {yaml_match}, route: {{cluster: c}}}}]}}]"
        ));
        let m = rc.virtual_hosts[0].routes[0].r#match.clone().expect("match");
        RouteMatcher::from_proto(&m, &FieldPath::starting_at("m"), false).expect("valid match")
    }

    fn req(uri: &str) -> Parts {
        http::Request::builder().uri(uri).body(()).expect("request").into_parts().0
    }

    fn matches(yaml_match: &str, uri: &str) -> bool {
        matcher(yaml_match).matches(&req(uri))
    }

    #[test]
    fn prefix_ignores_query_and_respects_case() {
        assert!(matches("{prefix: /api}", "/api"));
        assert!(matches("{prefix: /api}", "/api/v1?x=1"));
        assert!(matches("{prefix: /api}", "/apiary"));
        assert!(!matches("{prefix: /api}", "/API"));
        assert!(matches("{prefix: /api, case_sensitive: false}", "/APi/x"));
        assert!(!matches("{prefix: '/a?b'}", "/a?b"), "the query is not part of the matched path");
        assert!(matches("{prefix: ''}", "/anything"));
    }

    #[test]
    fn runtime_fraction_defaults_apply_without_a_runtime() {
        assert!(matches("{prefix: /, runtime_fraction: {default_value: {numerator: 100}, runtime_key: k}}", "/"));
        assert!(!matches("{prefix: /, runtime_fraction: {default_value: {numerator: 0}, runtime_key: k}}", "/"));
        let m = matcher("{prefix: /, runtime_fraction: {default_value: {numerator: 5, denominator: MILLION}}}");
        assert_eq!(
            m.runtime_fraction.map(|r| r.default),
            Some(crate::runtime::Fraction { numerator: 5, denominator: 1_000_000 })
        );
    }

    #[test]
    fn runtime_fraction_reads_its_key_from_the_runtime() {
        use crate::runtime::{self, Entry, Layer, Snapshot};
        let values =
            [("k.off", "0"), ("k.on", "100")].iter().map(|(k, v)| (k.to_string(), Entry::from_text(*v))).collect();
        runtime::publish_on_this_thread(Snapshot::new(vec![Layer { name: "admin".into(), values }]));
        let m = |key: &str, n: u32| {
            format!("{{prefix: /, runtime_fraction: {{default_value: {{numerator: {n}}}, runtime_key: {key}}}}}")
        };
        assert!(!matches(&m("k.off", 100), "/"));
        assert!(matches(&m("k.on", 0), "/"));
        assert!(matches(&m("k.unset", 100), "/"));
    }

    #[test]
    fn exact_path() {
        assert!(matches("{path: /a/b}", "/a/b"));
        assert!(matches("{path: /a/b}", "/a/b?q=1"));
        assert!(matches("{path: /a/b}", "/a/b#frag"));
        assert!(!matches("{path: /a/b}", "/a/b/"));
        assert!(!matches("{path: /a/b}", "/A/B"));
        assert!(matches("{path: /a/b, case_sensitive: false}", "/A/B"));
    }

    #[test]
    fn safe_regex_is_a_whole_path_match_and_ignores_case_sensitive() {
        assert!(matches(r"{safe_regex: {regex: '/b[io]t'}}", "/bit?x"));
        assert!(!matches(r"{safe_regex: {regex: '/b[io]t'}}", "/bits"));
        assert!(!matches(r"{safe_regex: {regex: '/b[io]t'}, case_sensitive: false}", "/BIT"));
    }

    #[test]
    fn path_separated_prefix() {
        let m = "{path_separated_prefix: /api/dev}";
        for ok in ["/api/dev", "/api/dev/", "/api/dev/v1", "/api/dev?param=true"] {
            assert!(matches(m, ok), "{ok}");
        }
        assert!(!matches(m, "/api/developer"));
        assert!(!matches(m, "/api/de"));
        assert!(matches("{path_separated_prefix: /api/dev, case_sensitive: false}", "/API/Dev/x"));
    }

    #[test]
    fn path_parameters_can_be_ignored() {
        let m = matcher("{path: /a/b}");
        assert!(!m.matches(&req("/a/b;v=1")));
        let rc = route_config(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {path: /a/b}, route: {cluster: c}}]}]",
        );
        let proto = rc.virtual_hosts[0].routes[0].r#match.clone().expect("match");
        let m = RouteMatcher::from_proto(&proto, &FieldPath::starting_at("m"), true).expect("valid");
        assert!(m.matches(&req("/a/b;v=1")));
        // Every segment's parameters, not only the last one's.
        assert!(m.matches(&req("/a;x=1;y/b;v=1?q=;z")));
        assert!(!m.matches(&req("/a;x/c")));
    }

    #[test]
    fn headers_and_query_parameters_must_all_match() {
        let m = matcher(
            "{prefix: /, headers: [{name: x-a, present_match: true}], \
             query_parameters: [{name: debug, string_match: {exact: '1'}}]}",
        );
        let with = |uri: &str, header: bool| {
            let mut b = http::Request::builder().uri(uri);
            if header {
                b = b.header("x-a", "v");
            }
            m.matches(&b.body(()).expect("request").into_parts().0)
        };
        assert!(with("/x?debug=1", true));
        assert!(!with("/x?debug=1", false));
        assert!(!with("/x?debug=2", true));
        assert!(!with("/x", true));
    }

    #[test]
    fn grpc_matches_grpc_content_types_only() {
        let m = matcher("{prefix: /, grpc: {}}");
        let with = |ct: &str| {
            let mut r = req("/svc/Method");
            r.headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            m.matches(&r)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(!with("application/grpc;charset=utf-8"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/json"));
        assert!(!m.matches(&req("/svc/Method")));
    }

    #[test]
    fn pathless_requests_match_nothing() {
        let connect =
            http::Request::builder().method("CONNECT").uri("example.com:443").body(()).expect("request").into_parts().0;
        assert!(!matcher("{prefix: ''}").matches(&connect));
    }

    #[test]
    fn matched_len_for_rewrites() {
        assert_eq!(matcher("{prefix: /api}").matched_len("/api/x?q"), 4);
        assert_eq!(matcher("{path: /api}").matched_len("/api?q"), 4);
        assert_eq!(matcher("{safe_regex: {regex: '/a.*'}}").matched_len("/abc?q"), 4);
        assert_eq!(matcher("{path_separated_prefix: /api}").matched_len("/api/x"), 4);
    }

    #[test]
    fn errors() {
        let rc = route_config(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {safe_regex: {regex: '('}}, route: {cluster: c}}]}]",
        );
        let proto = rc.virtual_hosts[0].routes[0].r#match.clone().expect("match");
        let e = RouteMatcher::from_proto(&proto, &FieldPath::starting_at("m"), false).unwrap_err();
        assert_eq!(e.path, "m.safe_regex.regex");
        let proto = RouteMatch::default();
        assert_eq!(RouteMatcher::from_proto(&proto, &FieldPath::starting_at("m"), false).unwrap_err().path, "m");
    }
}
