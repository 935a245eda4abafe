//! Envoy's default tag extraction, for the Prometheus format: the variable parts of
//! a stat name (cluster name, listener address, worker id, ...) become labels and
//! are cut out of the metric name, e.g. `cluster.echo.upstream_cx_total` →
//! `envoy_cluster_upstream_cx_total{envoy_cluster_name="echo"}`.

/// A stat name split into its tag-extracted name and tags (in Envoy's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub name: String,
    pub tags: Vec<(&'static str, String)>,
}

/// Prefixes whose next dot-separated segment is a tag, as Envoy's
/// `^<prefix>\.((.*?)\.)` extractors.
const SEGMENT_TAGS: &[(&str, &str)] = &[
    ("cluster.", "envoy_cluster_name"),
    ("http.", "envoy_http_conn_manager_prefix"),
    ("tcp.", "envoy_tcp_prefix"),
    ("vhost.", "envoy_virtual_host"),
];

/// Splits `name` into its tag-extracted name and tags.
pub fn extract(name: &str) -> Tagged {
    let mut tags = Vec::new();
    let mut rest = name.to_string();
    for (prefix, tag) in SEGMENT_TAGS {
        if let Some(after) = name.strip_prefix(prefix) {
            if let Some((value, tail)) = after.split_once('.') {
                tags.push((*tag, value.to_string()));
                rest = format!("{prefix}{tail}");
            }
            break;
        }
    }
    if let Some(after) = name.strip_prefix("listener.") {
        if let Some((addr, tail)) = listener_address(after) {
            tags.push(("envoy_listener_address", addr.to_string()));
            rest = format!("listener.{tail}");
        }
    }
    // `worker_<n>.` after listener., server. or listener_manager. → envoy_worker_id.
    for prefix in ["listener.", "server.", "listener_manager."] {
        if let Some(after) = rest.strip_prefix(prefix) {
            if let Some(w) = after.strip_prefix("worker_") {
                let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
                if !digits.is_empty() && w[digits.len()..].starts_with('.') {
                    let tail = &w[digits.len() + 1..];
                    rest = format!("{prefix}worker.{tail}");
                    tags.insert(0, ("envoy_worker_id", digits));
                }
            }
            break;
        }
    }
    Tagged { name: rest, tags }
}

/// The listener address at the start of `s`, as Envoy's extractor matches it: the
/// longest run of `[_.0-9]` (IPv4) or `[_[]a-fA-F0-9]` (IPv6) followed by a dot.
fn listener_address(s: &str) -> Option<(&str, &str)> {
    let v4 = |c: char| c == '_' || c == '.' || c.is_ascii_digit();
    let v6 = |c: char| c == '_' || c == '[' || c == ']' || c.is_ascii_hexdigit();
    for allowed in [&v4 as &dyn Fn(char) -> bool, &v6] {
        let run = s.chars().take_while(|c| allowed(*c)).count();
        // Backtrack to the last dot inside the run that is followed by more name.
        let candidate = &s[..run];
        let mut end = candidate.len();
        while end > 0 {
            if s.as_bytes().get(end) == Some(&b'.') && end > 0 && end < s.len() - 1 {
                return Some((&s[..end], &s[end + 1..]));
            }
            end -= 1;
        }
    }
    None
}

/// The Prometheus metric name: `envoy_` + the tag-extracted name with every
/// character outside `[a-zA-Z0-9_]` turned into `_`.
pub fn prometheus_name(tag_extracted: &str) -> String {
    let mut out = String::with_capacity(tag_extracted.len() + 6);
    out.push_str("envoy_");
    out.extend(tag_extracted.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> (String, Vec<(&'static str, String)>) {
        let x = extract(name);
        (prometheus_name(&x.name), x.tags)
    }

    #[test]
    fn envoy_default_extractors() {
        assert_eq!(
            t("cluster.echo.upstream_cx_total"),
            ("envoy_cluster_upstream_cx_total".into(), vec![("envoy_cluster_name", "echo".into())])
        );
        assert_eq!(
            t("cluster.echo.circuit_breakers.default.cx_open"),
            ("envoy_cluster_circuit_breakers_default_cx_open".into(), vec![("envoy_cluster_name", "echo".into())])
        );
        assert_eq!(
            t("listener.127.0.0.1_47103.downstream_cx_total"),
            ("envoy_listener_downstream_cx_total".into(), vec![("envoy_listener_address", "127.0.0.1_47103".into())])
        );
        assert_eq!(
            t("listener.127.0.0.1_47103.worker_1.downstream_cx_total"),
            (
                "envoy_listener_worker_downstream_cx_total".into(),
                vec![("envoy_worker_id", "1".into()), ("envoy_listener_address", "127.0.0.1_47103".into())]
            )
        );
        assert_eq!(
            t("listener.admin.downstream_cx_total"),
            ("envoy_listener_admin_downstream_cx_total".into(), vec![])
        );
        assert_eq!(
            t("server.worker_0.watchdog_miss"),
            ("envoy_server_worker_watchdog_miss".into(), vec![("envoy_worker_id", "0".into())])
        );
        assert_eq!(t("server.live"), ("envoy_server_live".into(), vec![]));
        assert_eq!(
            t("tcp.tcp_stats.downstream_cx_total"),
            ("envoy_tcp_downstream_cx_total".into(), vec![("envoy_tcp_prefix", "tcp_stats".into())])
        );
        assert_eq!(
            t("listener.[__1]_80.downstream_cx_total"),
            ("envoy_listener_downstream_cx_total".into(), vec![("envoy_listener_address", "[__1]_80".into())])
        );
    }
}
