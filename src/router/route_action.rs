//! Envoy's `RouteAction` (a route that forwards): which cluster, how to rewrite the
//! path and host, timeouts and the retry policy.
//!
//! The cluster is named (`cluster`), read from a request header (`cluster_header`;
//! its first value), or picked by weight (`weighted_clusters`): a random number modulo
//! the total weight falls into one cluster's interval, the clusters' intervals laid
//! end to end in config order, as Envoy does. The route timeout defaults to 15s and
//! `0s` disables it; the retry policy is the route's, else its virtual host's.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterNotFoundResponseCode, ClusterSpecifier, HostRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::RandomValueSpecifier;
use envoy_types::pb::envoy::config::route::v3::{RouteAction as RouteActionProto, WeightedCluster};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::sync::Arc;

use super::header_mutation::{HeaderEdits, HeaderMutation};
use super::path_rewrite::PathRewrite;
use super::retry_policy::RetryPolicy;
use super::shadow::MirrorPolicy;
use crate::config::{duration, ConfigError, FieldPath};

/// Envoy's default route timeout.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// How the upstream cluster is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSelector {
    Name(String),
    /// The value of this request header (its first value).
    Header(HeaderName),
    /// `(cluster, weight)` in config order; `total` is the sum of the weights (> 0).
    Weighted {
        clusters: Vec<(String, u32)>,
        total: u32,
    },
}

/// What a weighted cluster entry (`ClusterWeight`) adds to the route when it is
/// picked. As Envoy's `WeightedClusterEntry`, its header edits come before the
/// route's (on requests and responses alike), and its host is set plainly,
/// before the route's own edits and rewrites.
#[derive(Debug, Clone, Default)]
pub struct ClusterWeightEdits {
    pub request: HeaderMutation,
    pub response: HeaderMutation,
    pub host_rewrite: Option<HeaderValue>,
}

/// A compiled `RouteAction`.
#[derive(Debug, Clone)]
pub struct ForwardAction {
    pub cluster: ClusterSelector,
    /// The local reply when the chosen cluster does not exist (default 503).
    pub cluster_not_found_response_code: StatusCode,
    pub host_rewrite_literal: Option<String>,
    /// `host_rewrite_header`: the host comes from this request header's first
    /// value, when it has a non-empty one.
    pub host_rewrite_header: Option<HeaderName>,
    /// Rewrite `:authority` to the upstream host's hostname.
    pub auto_host_rewrite: bool,
    /// The route timeout; `None` when disabled (`0s`).
    pub timeout: Option<Duration>,
    /// `None`: not set (the connection manager's `stream_idle_timeout` applies);
    /// `Some(ZERO)`: explicitly disabled, even the connection manager's.
    pub idle_timeout: Option<Duration>,
    /// `max_stream_duration.max_stream_duration`: replaces the connection
    /// manager's `max_stream_duration` for this stream (`Some(ZERO)`: none).
    pub max_stream_duration: Option<Duration>,
    /// The route's retry policy, else the virtual host's.
    pub retry_policy: Option<RetryPolicy>,
    pub(crate) path_rewrite: Option<PathRewrite>,
    /// The virtual host's `include_request_attempt_count`: each try carries
    /// `x-envoy-attempt-count`.
    pub include_attempt_count: bool,
    /// With `weighted_clusters`: each entry's edits, by index in `clusters`
    /// (`None`: it has none).
    weighted_edits: Vec<Option<Arc<ClusterWeightEdits>>>,
    /// `request_mirror_policies`: where copies of the request go.
    pub mirror_policies: Vec<MirrorPolicy>,
    /// `upgrade_configs`: upgrade types (lower case) this route turns on or off,
    /// over the connection manager's.
    pub upgrades: Vec<(String, bool)>,
}

impl ForwardAction {
    /// Compiles `ra`; `path` points at the route's `route` field. `vhost_retry` is the
    /// virtual host's retry policy, used when the route has none;
    /// `include_attempt_count` its `include_request_attempt_count`.
    pub fn from_proto(
        ra: &RouteActionProto,
        path: &FieldPath,
        vhost_retry: Option<&RetryPolicy>,
        include_attempt_count: bool,
    ) -> Result<ForwardAction, ConfigError> {
        let mut weighted_edits = Vec::new();
        let cluster = match &ra.cluster_specifier {
            Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => ClusterSelector::Name(name.clone()),
            Some(ClusterSpecifier::Cluster(_)) => {
                return Err(path.field_error("cluster", "value length must be at least 1 characters"))
            }
            Some(ClusterSpecifier::ClusterHeader(h)) => ClusterSelector::Header(
                HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| path.field_error("cluster_header", format!("invalid header name '{h}'")))?,
            ),
            Some(ClusterSpecifier::WeightedClusters(wc)) => {
                let mut p = path.clone();
                p.push_field("weighted_clusters");
                weighted_edits = cluster_weight_edits(wc, &p)?;
                weighted(wc, &p)?
            }
            Some(ClusterSpecifier::ClusterSpecifierPlugin(_)) => {
                return Err(path.field_error(
                    "cluster_specifier_plugin",
                    "field 'cluster_specifier_plugin' is not supported by Courier",
                ))
            }
            Some(ClusterSpecifier::InlineClusterSpecifierPlugin(_)) => {
                return Err(path.field_error(
                    "inline_cluster_specifier_plugin",
                    "field 'inline_cluster_specifier_plugin' is not supported by Courier",
                ))
            }
            None => return Err(path.error("one of cluster, cluster_header or weighted_clusters must be set")),
        };
        let cluster_not_found_response_code =
            match ClusterNotFoundResponseCode::try_from(ra.cluster_not_found_response_code) {
                Ok(ClusterNotFoundResponseCode::ServiceUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
                Ok(ClusterNotFoundResponseCode::NotFound) => StatusCode::NOT_FOUND,
                Ok(ClusterNotFoundResponseCode::InternalServerError) => StatusCode::INTERNAL_SERVER_ERROR,
                Err(_) => {
                    return Err(path.field_error(
                        "cluster_not_found_response_code",
                        format!("unknown value {}", ra.cluster_not_found_response_code),
                    ))
                }
            };
        let mut host_rewrite_header = None;
        let (host_rewrite_literal, auto_host_rewrite) = match &ra.host_rewrite_specifier {
            None => (None, false),
            Some(HostRewriteSpecifier::HostRewriteLiteral(h)) if h.is_empty() => (None, false),
            Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => (Some(h.clone()), false),
            Some(HostRewriteSpecifier::AutoHostRewrite(b)) => (None, b.value),
            Some(HostRewriteSpecifier::HostRewriteHeader(h)) => {
                let name = HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| path.field_error("host_rewrite_header", format!("invalid header name '{h}'")))?;
                host_rewrite_header = Some(name);
                (None, false)
            }
            Some(HostRewriteSpecifier::HostRewritePathRegex(_)) => {
                return Err(path.field_error(
                    "host_rewrite_path_regex",
                    "field 'host_rewrite_path_regex' is not supported by Courier",
                ))
            }
            Some(HostRewriteSpecifier::HostRewrite(_)) => {
                return Err(path.field_error("host_rewrite", "field 'host_rewrite' is not supported by Courier"))
            }
        };
        let path_rewrite = match (ra.prefix_rewrite.is_empty(), &ra.regex_rewrite) {
            (true, None) => None,
            (false, None) => Some(PathRewrite::Prefix(ra.prefix_rewrite.clone())),
            (true, Some(rms)) => {
                let mut p = path.clone();
                p.push_field("regex_rewrite");
                Some(PathRewrite::regex(rms, &p)?)
            }
            (false, Some(_)) => {
                return Err(path.field_error(
                    "regex_rewrite",
                    "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
                ))
            }
        };
        let retry_policy = match &ra.retry_policy {
            Some(rp) => {
                let mut p = path.clone();
                p.push_field("retry_policy");
                Some(RetryPolicy::from_proto(rp, &p)?)
            }
            None => vhost_retry.cloned(),
        };
        let mut mirror_policies = Vec::new();
        for (i, m) in ra.request_mirror_policies.iter().enumerate() {
            let mut p = path.child("request_mirror_policies");
            p.push_index(i);
            mirror_policies.push(MirrorPolicy::from_proto(m, &p)?);
        }
        Ok(ForwardAction {
            cluster,
            cluster_not_found_response_code,
            host_rewrite_literal,
            host_rewrite_header,
            auto_host_rewrite,
            // With `max_stream_duration` set (even empty), Envoy's router uses
            // the "new timeouts": the route `timeout` is not applied at all.
            timeout: match (&ra.max_stream_duration, &ra.timeout) {
                (Some(_), _) => None,
                (None, None) => Some(DEFAULT_ROUTE_TIMEOUT),
                (None, Some(d)) => Some(duration(d)).filter(|d| !d.is_zero()),
            },
            max_stream_duration: ra
                .max_stream_duration
                .as_ref()
                .and_then(|m| m.max_stream_duration.as_ref())
                .map(duration),
            idle_timeout: ra.idle_timeout.as_ref().map(duration),
            retry_policy,
            path_rewrite,
            include_attempt_count,
            weighted_edits,
            mirror_policies,
            upgrades: ra
                .upgrade_configs
                .iter()
                .map(|u| (u.upgrade_type.to_ascii_lowercase(), u.enabled.is_none_or(|e| e.value)))
                .collect(),
        })
    }

    /// The cluster for this request: the named one, the first value of the cluster
    /// header (`None` when absent, empty or not text), or the weighted pick for
    /// `random`.
    pub fn cluster_name<'a>(&'a self, headers: &'a HeaderMap, random: u64) -> Option<&'a str> {
        self.pick_cluster(headers, random).map(|(name, _)| name)
    }

    /// As `cluster_name`, with the picked weighted entry's edits, if it has any.
    pub fn pick_cluster<'a>(
        &'a self,
        headers: &'a HeaderMap,
        random: u64,
    ) -> Option<(&'a str, Option<&'a Arc<ClusterWeightEdits>>)> {
        match &self.cluster {
            ClusterSelector::Name(name) => Some((name, None)),
            ClusterSelector::Header(h) => {
                headers.get(h).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(|n| (n, None))
            }
            ClusterSelector::Weighted { clusters, total } => {
                let mut point = random % u64::from(*total);
                for (i, (name, weight)) in clusters.iter().enumerate() {
                    if point < u64::from(*weight) {
                        return Some((name, self.weighted_edits.get(i).and_then(Option::as_ref)));
                    }
                    point -= u64::from(*weight);
                }
                None
            }
        }
    }

    /// Every cluster this action can name statically (for `validate_clusters`).
    pub fn static_clusters(&self) -> Vec<&str> {
        match &self.cluster {
            ClusterSelector::Name(n) => vec![n.as_str()],
            ClusterSelector::Header(_) => vec![],
            ClusterSelector::Weighted { clusters, .. } => clusters.iter().map(|(n, _)| n.as_str()).collect(),
        }
    }
}

/// Each `ClusterWeight`'s header edits and host; empty when none has any.
fn cluster_weight_edits(
    wc: &WeightedCluster,
    path: &FieldPath,
) -> Result<Vec<Option<Arc<ClusterWeightEdits>>>, ConfigError> {
    let mut out = Vec::with_capacity(wc.clusters.len());
    for (i, cw) in wc.clusters.iter().enumerate() {
        let mut p = path.clone();
        p.push_field("clusters");
        p.push_index(i);
        let request = HeaderEdits::from_proto(
            &cw.request_headers_to_add,
            &cw.request_headers_to_remove,
            &p,
            "request_headers_to_add",
            "request_headers_to_remove",
        )?;
        let response = HeaderEdits::from_proto(
            &cw.response_headers_to_add,
            &cw.response_headers_to_remove,
            &p,
            "response_headers_to_add",
            "response_headers_to_remove",
        )?;
        let host_rewrite = match &cw.host_rewrite_specifier {
            Some(HostRewriteLiteral(h)) if !h.is_empty() => Some(
                HeaderValue::from_str(h)
                    .map_err(|_| p.field_error("host_rewrite_literal", "not a valid header value"))?,
            ),
            _ => None,
        };
        let edits = ClusterWeightEdits {
            request: HeaderMutation::from_levels([Arc::new(request)]),
            response: HeaderMutation::from_levels([Arc::new(response)]),
            host_rewrite,
        };
        let has_any = !edits.request.is_empty() || !edits.response.is_empty() || edits.host_rewrite.is_some();
        out.push(has_any.then(|| Arc::new(edits)));
    }
    if out.iter().all(Option::is_none) {
        out.clear();
    }
    Ok(out)
}

// `total_weight` is deprecated but still Envoy's API.
#[allow(deprecated)]
fn weighted(wc: &WeightedCluster, path: &FieldPath) -> Result<ClusterSelector, ConfigError> {
    if !wc.runtime_key_prefix.is_empty() {
        return Err(path.field_error("runtime_key_prefix", "field 'runtime_key_prefix' is not supported by Courier"));
    }
    if let Some(spec) = &wc.random_value_specifier {
        let field = match spec {
            RandomValueSpecifier::HeaderName(_) => "header_name",
            RandomValueSpecifier::UseHashPolicy(_) => "use_hash_policy",
        };
        return Err(path.field_error(field, format!("field '{field}' is not supported by Courier")));
    }
    if wc.clusters.is_empty() {
        return Err(path.field_error("clusters", "value must contain at least 1 item(s)"));
    }
    let mut clusters = Vec::with_capacity(wc.clusters.len());
    let mut sum: u64 = 0;
    for (i, cw) in wc.clusters.iter().enumerate() {
        let mut p = path.clone();
        p.push_field("clusters");
        p.push_index(i);
        if !cw.cluster_header.is_empty() {
            return Err(p.field_error("cluster_header", "field 'cluster_header' is not supported by Courier"));
        }
        if cw.name.is_empty() {
            return Err(p.field_error("name", "At least one of name or cluster_header need to be specified"));
        }
        let weight = cw.weight.as_ref().map(|w| w.value).ok_or_else(|| p.field_error("weight", "value is required"))?;
        sum += u64::from(weight);
        clusters.push((cw.name.clone(), weight));
    }
    if sum == 0 {
        return Err(path.error("Sum of weights in the weighted_cluster must be greater than 0."));
    }
    let total = u32::try_from(sum)
        .map_err(|_| path.error(format!("Sum of weights in the weighted_cluster ({sum}) must fit in 32 bits")))?;
    if let Some(t) = &wc.total_weight {
        if t.value != total {
            return Err(path.field_error(
                "total_weight",
                format!("Sum of weights in the weighted_cluster should add up to {}, got {total}", t.value),
            ));
        }
    }
    Ok(ClusterSelector::Weighted { clusters, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::route::RouteAction;
    use crate::router::test_util::{request, table, try_table};

    fn forward(route_action: &str) -> ForwardAction {
        let t = table(&format!(
            "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {route_action}}}]}}]"
        ));
        let parts = request("h", "/", &[]);
        match &t.find(&parts).expect("route").action {
            RouteAction::Forward(f) => (**f).clone(),
            other => panic!("not forward: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let f = forward("{cluster: c}");
        assert_eq!(f.cluster, ClusterSelector::Name("c".into()));
        assert_eq!(f.cluster_name(&HeaderMap::new(), 0), Some("c"));
        assert_eq!(f.timeout, Some(Duration::from_secs(15)));
        assert_eq!(f.cluster_not_found_response_code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(f.retry_policy.is_none() && f.host_rewrite_literal.is_none() && !f.auto_host_rewrite);
    }

    #[test]
    fn timeouts_and_host_rewrite() {
        let f = forward("{cluster: c, timeout: 0s, host_rewrite_literal: up.example}");
        assert_eq!(f.timeout, None);
        assert_eq!(f.host_rewrite_literal.as_deref(), Some("up.example"));
        let f =
            forward("{cluster: c, timeout: 2.5s, auto_host_rewrite: true, cluster_not_found_response_code: NOT_FOUND}");
        assert_eq!(f.timeout, Some(Duration::from_millis(2500)));
        assert!(f.auto_host_rewrite);
        assert_eq!(f.cluster_not_found_response_code, StatusCode::NOT_FOUND);
    }

    #[test]
    fn cluster_header() {
        let f = forward("{cluster_header: X-Cluster}");
        let mut h = HeaderMap::new();
        assert_eq!(f.cluster_name(&h, 0), None);
        h.insert("x-cluster", "blue".parse().expect("value"));
        assert_eq!(f.cluster_name(&h, 0), Some("blue"));
        h.insert("x-cluster", "".parse().expect("value"));
        assert_eq!(f.cluster_name(&h, 0), None);
    }

    #[test]
    fn weighted_selection_follows_the_weights() {
        let f = forward(
            "{weighted_clusters: {clusters: [{name: a, weight: 1}, {name: z, weight: 0}, {name: b, weight: 3}]}}",
        );
        assert_eq!(
            f.cluster,
            ClusterSelector::Weighted { clusters: vec![("a".into(), 1), ("z".into(), 0), ("b".into(), 3)], total: 4 }
        );
        let h = HeaderMap::new();
        assert_eq!(f.cluster_name(&h, 0), Some("a"));
        assert_eq!(f.cluster_name(&h, 1), Some("b"));
        assert_eq!(f.cluster_name(&h, 3), Some("b"));
        assert_eq!(f.cluster_name(&h, 4), Some("a"));
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            match f.cluster_name(&h, crate::common::random::next_u64()) {
                Some("a") => counts[0] += 1,
                Some("b") => counts[1] += 1,
                other => panic!("picked {other:?}"),
            }
        }
        // 1:3 within a few percent.
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((29_000..31_000).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn retry_policy_route_overrides_vhost() {
        let t = table(
            "virtual_hosts: [{name: v, domains: ['*'], retry_policy: {retry_on: reset, num_retries: 5}, routes: [\
               {match: {prefix: /own}, route: {cluster: c, retry_policy: {retry_on: 5xx}}},\
               {match: {prefix: /}, route: {cluster: c}}]}]",
        );
        let policy = |uri: &str| match &t.find(&request("h", uri, &[])).expect("route").action {
            RouteAction::Forward(f) => f.retry_policy.clone().expect("policy"),
            _ => panic!("not forward"),
        };
        assert_eq!(policy("/own").num_retries, 1);
        assert!(policy("/own").retry_on.contains(super::super::retry_policy::RetryOn::FIVE_XX));
        assert_eq!(policy("/other").num_retries, 5);
    }

    #[test]
    fn errors() {
        let route = |action: &str| {
            try_table(&format!(
                "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {action}}}]}}]"
            ))
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            route("{weighted_clusters: {clusters: [{name: a, weight: 0}]}}"),
            "route_config.virtual_hosts[0].routes[0].route.weighted_clusters: Sum of weights in the weighted_cluster must be greater than 0."
        );
        assert_eq!(
            route("{weighted_clusters: {clusters: [{name: a}]}}"),
            "route_config.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].weight: value is required"
        );
        assert!(route("{cluster: c, prefix_rewrite: /x, regex_rewrite: {pattern: {regex: a}, substitution: b}}")
            .starts_with("route_config.virtual_hosts[0].routes[0].route.regex_rewrite: "));
        assert!(route("{cluster_header: 'bad header'}")
            .starts_with("route_config.virtual_hosts[0].routes[0].route.cluster_header: "));
        assert_eq!(
            route("{cluster: c, max_stream_duration: {grpc_timeout_header_max: 1s}}"),
            "route_config.virtual_hosts[0].routes[0].route.max_stream_duration.grpc_timeout_header_max: field \
             'grpc_timeout_header_max' of envoy.config.route.v3.RouteAction.MaxStreamDuration is not supported by Courier"
        );
        assert!(route("{cluster: c, host_rewrite_header: 'bad header'}")
            .starts_with("route_config.virtual_hosts[0].routes[0].route.host_rewrite_header: "));
    }
}
