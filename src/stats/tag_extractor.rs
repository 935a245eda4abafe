//! Tag extraction, for the Prometheus format, as Envoy's: the variable parts of
//! a stat name (cluster name, listener address, response code, worker id, ...) become
//! labels and are cut out of the name, e.g. `cluster.echo.upstream_rq_200` →
//! `envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="echo"}`.
//!
//! As in Envoy, every extractor looks at the whole original name, and what they
//! capture is cut out all at once at the end. Extractors whose pattern starts with a
//! fixed first token (`cluster`, `http`, ...) run after the ones that do not (response
//! code, worker id, ...); within each group they run in table order, regular
//! expressions before token patterns. That order is the order of the labels.
//!
//! The bootstrap's `stats_config.stats_tags` add regex and fixed-value extractors
//! after the defaults, and `use_all_default_tags: false` drops the defaults
//! ([`TagProducer`]).
//!
//! Skipped from Envoy's default set, because Courier creates none of the stats they
//! read: the DynamoDB, TLS (ciphers, curves, signature algorithms, versions,
//! certificates), RBAC, proxy-protocol, SDS, scoped-RDS and active health check name
//! extractors.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use regex::Regex;

/// A stat name split into its tag-extracted name and tags (in Envoy's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub name: String,
    pub tags: Vec<(Cow<'static, str>, String)>,
}

/// How one extractor finds its tag in a name.
enum Pattern {
    /// Group 1 is cut out of the name; group 2 is the tag's value. The regex is tried
    /// only on names containing `needle`; a value equal to `not` is no tag.
    Regex { re: &'static str, needle: &'static str, not: Option<&'static str> },
    /// Dot-separated tokens: a literal, `*` (one token), `$` (one token: the value,
    /// cut out with the dot after it) or `**` (any number of tokens; at the end, at
    /// least one: the `$` token is never the stat's own last name).
    Tokens(&'static str),
}

/// An IPv4 or bracketed IPv6 address and a port, as listener stat names spell them
/// (`127.0.0.1_80`, `[__1]_80`).
macro_rules! address {
    () => {
        r"(?:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[[0-9a-fA-F_]+\])_[0-9]+"
    };
}

/// Envoy's default extractors (its `TagNames`), as Prometheus label names, in
/// Envoy's order: regular expressions first, then token patterns.
const DEFAULTS: &[(&str, Pattern)] = &[
    // *_rq(_<code>)
    ("envoy_response_code", Pattern::Regex { re: r"_rq(_([0-9]{3}))$", needle: "_rq_", not: None }),
    // *_rq_(<class>)xx
    ("envoy_response_code_class", Pattern::Regex { re: r"_rq_(([0-9]))xx$", needle: "_rq_", not: None }),
    // listener.[<address>.]http.(<stat_prefix>.)*
    (
        "envoy_http_conn_manager_prefix",
        Pattern::Regex { re: r"^listener\..*?\.http\.(([^.]+)\.)", needle: ".http.", not: None },
    ),
    // {listener.[<address>.],server.,listener_manager.,thread_local_cluster_manager.}worker_(<id>.)*
    (
        "envoy_worker_id",
        Pattern::Regex {
            re: concat!(
                r"^(?:listener\.(?:",
                address!(),
                r"|[^.]+)|server|listener_manager|thread_local_cluster_manager)\.worker_(([0-9]+)\.)"
            ),
            needle: "worker_",
            not: None,
        },
    ),
    // listener.(<address or stat_prefix>.)*, except the admin listener
    (
        "envoy_listener_address",
        Pattern::Regex {
            re: concat!(r"^listener\.((", address!(), r"|[^.]+)\.)"),
            needle: "listener.",
            not: Some("admin"),
        },
    ),
    // http.[<stat_prefix>.]rds.(<route_config_name>.)<stat>: the route config name may hold dots
    (
        "envoy_rds_route_config",
        Pattern::Regex { re: r"^http\.[^.]+\.rds\.(([0-9A-Za-z_.-]+)\.)[0-9A-Za-z_]+$", needle: ".rds.", not: None },
    ),
    ("envoy_mongo_callsite", Pattern::Tokens("mongo.*.collection.*.callsite.$.query.**")),
    ("envoy_mongo_collection", Pattern::Tokens("mongo.*.collection.$.**.query.*")),
    ("envoy_mongo_cmd", Pattern::Tokens("mongo.*.cmd.$.**")),
    ("envoy_grpc_bridge_method", Pattern::Tokens("cluster.*.grpc.*.$.**")),
    ("envoy_http_user_agent", Pattern::Tokens("http.*.user_agent.$.**")),
    ("envoy_virtual_cluster", Pattern::Tokens("vhost.*.vcluster.$.**")),
    ("envoy_fault_downstream_cluster", Pattern::Tokens("http.*.fault.$.**")),
    ("envoy_grpc_bridge_service", Pattern::Tokens("cluster.*.grpc.$.**")),
    ("envoy_tcp_prefix", Pattern::Tokens("tcp.$.**")),
    ("envoy_udp_prefix", Pattern::Tokens("udp.$.**")),
    ("envoy_clientssl_prefix", Pattern::Tokens("auth.clientssl.$.**")),
    ("envoy_ratelimit_prefix", Pattern::Tokens("ratelimit.$.**")),
    ("envoy_cluster_name", Pattern::Tokens("cluster.$.**")),
    ("envoy_ext_authz_prefix", Pattern::Tokens("cluster.*.ext_authz.$.**")),
    ("envoy_ext_authz_prefix", Pattern::Tokens("http.*.ext_authz.$.**")),
    ("envoy_http_conn_manager_prefix", Pattern::Tokens("http.$.**")),
    ("envoy_virtual_host", Pattern::Tokens("vhost.$.**")),
    ("envoy_mongo_prefix", Pattern::Tokens("mongo.$.**")),
    ("envoy_route", Pattern::Tokens("vhost.*.route.$.**")),
    ("envoy_thrift_prefix", Pattern::Tokens("thrift.$.**")),
    ("envoy_redis_prefix", Pattern::Tokens("redis.$.**")),
    ("envoy_local_http_ratelimit_prefix", Pattern::Tokens("$.http_local_rate_limit.**")),
    ("envoy_local_network_ratelimit_prefix", Pattern::Tokens("local_rate_limit.$.**")),
    ("envoy_local_listener_ratelimit_prefix", Pattern::Tokens("listener_local_ratelimit.$.**")),
    ("envoy_dns_filter_prefix", Pattern::Tokens("dns_filter.$.**")),
    ("envoy_connection_limit_prefix", Pattern::Tokens("connection_limit.$.**")),
];

#[derive(Debug)]
enum Matcher {
    Regex {
        re: Regex,
        needle: &'static str,
        not: Option<&'static str>,
    },
    Tokens(Vec<&'static str>),
    /// A `fixed_value` tag: on every name, nothing cut out.
    Fixed(String),
}

#[derive(Debug)]
struct Extractor {
    label: Cow<'static, str>,
    /// The tag's name as Envoy spells it (`envoy.cluster_name`, a `stats_tags`
    /// `tag_name` as given): what dog_statsd sends, where `label` is Prometheus'.
    tag_name: Cow<'static, str>,
    /// The fixed first token every name it matches starts with, if any.
    first: Option<Box<str>>,
    matcher: Matcher,
}

impl Extractor {
    fn new(label: &'static str, pattern: &Pattern) -> Extractor {
        match *pattern {
            Pattern::Regex { re, needle, not } => Extractor {
                label: Cow::Borrowed(label),
                tag_name: default_tag_name(label),
                first: regex_first_token(re).map(Box::from),
                // The table's own constants, checked by the tests.
                matcher: Matcher::Regex { re: Regex::new(re).expect("default tag regex"), needle, not },
            },
            Pattern::Tokens(pattern) => {
                let tokens: Vec<&str> = pattern.split('.').collect();
                let first = tokens.first().copied().filter(|t| !matches!(*t, "*" | "**" | "$")).map(Box::from);
                Extractor {
                    label: Cow::Borrowed(label),
                    tag_name: default_tag_name(label),
                    first,
                    matcher: Matcher::Tokens(tokens),
                }
            }
        }
    }

    /// The tag's value and the byte range to cut out of `name` (split into `tokens`).
    fn find<'a>(&'a self, name: &'a str, tokens: &[&'a str]) -> Option<(&'a str, Range<usize>)> {
        match &self.matcher {
            Matcher::Regex { re, needle, not } => {
                if !name.contains(needle) {
                    return None;
                }
                let caps = re.captures(name)?;
                let cut = caps.get(1)?;
                let value = caps.get(2).unwrap_or(cut).as_str();
                (Some(value) != *not).then(|| (value, cut.range()))
            }
            Matcher::Tokens(pattern) => {
                let index = match_tokens(pattern, tokens, 0)??;
                let start: usize = tokens[..index].iter().map(|t| t.len() + 1).sum();
                let value = tokens[index];
                Some((value, start..start + value.len() + 1))
            }
            Matcher::Fixed(value) => Some((value, 0..0)),
        }
    }
}

/// `word` when `re` starts with `^word\.`, as Envoy keys its regex extractors.
fn regex_first_token(re: &str) -> Option<&str> {
    let word = re.strip_prefix('^')?.split_once(r"\.")?.0;
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then_some(word)
}

/// Whether `tokens` match `pattern`: `None` if not, else the index of the `$` token
/// (`Some(None)` for a matching pattern suffix without one). `at` is the index of
/// `tokens[0]` in the whole name.
fn match_tokens(pattern: &[&str], tokens: &[&str], at: usize) -> Option<Option<usize>> {
    let Some((&head, rest)) = pattern.split_first() else {
        return tokens.is_empty().then_some(None);
    };
    if head == "**" {
        let least = usize::from(rest.is_empty());
        return (least..=tokens.len()).find_map(|skip| match_tokens(rest, &tokens[skip..], at + skip));
    }
    let (&token, tail) = tokens.split_first()?;
    if head != "*" && head != "$" && head != token {
        return None;
    }
    let found = match_tokens(rest, tail, at + 1)?;
    Some(if head == "$" { Some(at) } else { found })
}

/// The tag extractors of a store: Envoy's defaults (unless the bootstrap's
/// `use_all_default_tags` is false) followed by the bootstrap's `stats_tags`, and the
/// `fixed_value` tags, as Envoy's `TagProducerImpl` builds them.
#[derive(Debug)]
pub struct TagProducer {
    /// Those without a fixed first token (a `fixed_value` tag has none), then the
    /// others, each group in the order given (Envoy runs them in this order, so
    /// the labels come out so).
    extractors: Vec<Extractor>,
}

impl TagProducer {
    /// Envoy's defaults, compiled once per process.
    pub fn envoy_defaults() -> Arc<TagProducer> {
        static DEFAULT: OnceLock<Arc<TagProducer>> = OnceLock::new();
        DEFAULT.get_or_init(|| Arc::new(TagProducer::new(true))).clone()
    }

    /// Envoy's defaults when `use_defaults`, else no extractor; see `add_regex` and
    /// `add_fixed` for the bootstrap's own.
    pub fn new(use_defaults: bool) -> TagProducer {
        let extractors = if use_defaults {
            DEFAULTS.iter().map(|(label, p)| Extractor::new(label, p)).collect()
        } else {
            Vec::new()
        };
        let mut producer = TagProducer { extractors };
        producer.order();
        producer
    }

    /// Whether a tag is already named `label` (Envoy refuses a name twice).
    pub fn has(&self, label: &str) -> bool {
        self.extractors.iter().any(|e| e.label == label)
    }

    /// Adds Envoy's default extractors named `label` (a `stats_tags` entry without
    /// a regex); returns how many there are.
    pub fn add_defaults_named(&mut self, label: &str) -> usize {
        let found: Vec<Extractor> =
            DEFAULTS.iter().filter(|(l, _)| *l == label).map(|(l, p)| Extractor::new(l, p)).collect();
        let n = found.len();
        self.extractors.extend(found);
        self.order();
        n
    }

    /// Adds a `stats_tags` regex: group 1 is cut out of the name, group 2 (else
    /// group 1) is the value, as Envoy's regex extractors do.
    pub fn add_regex(&mut self, tag_name: &str, re: Regex) {
        let first = regex_first_token(re.as_str()).map(Box::from);
        self.extractors.push(Extractor {
            label: Cow::Owned(label_name(tag_name)),
            tag_name: Cow::Owned(tag_name.to_string()),
            first,
            matcher: Matcher::Regex { re, needle: "", not: None },
        });
        self.order();
    }

    /// Adds a `stats_tags` `fixed_value` tag, which every name gets.
    pub fn add_fixed(&mut self, tag_name: &str, value: String) {
        self.extractors.push(Extractor {
            label: Cow::Owned(label_name(tag_name)),
            tag_name: Cow::Owned(tag_name.to_string()),
            first: None,
            matcher: Matcher::Fixed(value),
        });
        self.order();
    }

    /// Stable: keeps the given order within each group.
    fn order(&mut self) {
        self.extractors.sort_by_key(|e| e.first.is_some());
    }

    /// Splits `name` into its tag-extracted name and tags.
    pub fn extract(&self, name: &str) -> Tagged {
        self.extract_naming_tags_by(name, |e| &e.label)
    }

    /// As [`extract`](Self::extract), the tags named as Envoy names them
    /// (`envoy.cluster_name`, not `envoy_cluster_name`): what dog_statsd sends.
    pub fn extract_with_envoy_tag_names(&self, name: &str) -> Tagged {
        self.extract_naming_tags_by(name, |e| &e.tag_name)
    }

    fn extract_naming_tags_by(&self, name: &str, tag_name: fn(&Extractor) -> &Cow<'static, str>) -> Tagged {
        let tokens: Vec<&str> = name.split('.').collect();
        let first = tokens.first().copied().unwrap_or("");
        let mut tags = Vec::new();
        let mut cuts = Vec::new();
        for e in self.extractors.iter().filter(|e| e.first.as_deref().is_none_or(|f| f == first)) {
            if let Some((value, cut)) = e.find(name, &tokens) {
                tags.push((tag_name(e).clone(), value.to_string()));
                cuts.push(cut);
            }
        }
        Tagged { name: cut_out(name, cuts), tags }
    }
}

/// Envoy's name of a default tag, kept under its Prometheus label: every default
/// is `envoy.<rest>` (`envoy_cluster_name` is `envoy.cluster_name`).
fn default_tag_name(label: &'static str) -> Cow<'static, str> {
    match label.strip_prefix("envoy_") {
        Some(rest) => Cow::Owned(format!("envoy.{rest}")),
        None => Cow::Borrowed(label),
    }
}

/// Splits `name` with Envoy's default extractors.
pub fn extract(name: &str) -> Tagged {
    TagProducer::envoy_defaults().extract(name)
}

/// A tag name as a Prometheus label: every character outside `[a-zA-Z0-9_]` becomes
/// `_` (`envoy.cluster_name` → `envoy_cluster_name`), as Envoy's formatter does.
pub fn label_name(tag_name: &str) -> String {
    tag_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// `name` without the bytes in `cuts` (which may overlap).
fn cut_out(name: &str, mut cuts: Vec<Range<usize>>) -> String {
    cuts.sort_by_key(|c| c.start);
    let mut out = String::with_capacity(name.len());
    let mut at = 0;
    for cut in cuts {
        if cut.start > at {
            out.push_str(&name[at..cut.start]);
        }
        at = at.max(cut.end);
    }
    out.push_str(&name[at..]);
    out
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

    /// The metric name and labels as one string, as Envoy's `/stats/prometheus` shows
    /// a series: `envoy_x{a="1",b="2"}`.
    fn series(name: &str) -> String {
        let x = extract(name);
        let labels: Vec<String> = x.tags.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{}{{{}}}", prometheus_name(&x.name), labels.join(","))
    }

    /// Pairs seen in Envoy 1.40's `/stats` and `/stats/prometheus` on the same run.
    #[test]
    fn envoy_default_extractors() {
        let cases = [
            ("cluster.echo.upstream_cx_total", r#"envoy_cluster_upstream_cx_total{envoy_cluster_name="echo"}"#),
            (
                "cluster.echo.circuit_breakers.default.cx_open",
                r#"envoy_cluster_circuit_breakers_default_cx_open{envoy_cluster_name="echo"}"#,
            ),
            (
                "cluster.web.upstream_rq_2xx",
                r#"envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="web"}"#,
            ),
            (
                "cluster.web.upstream_rq_503",
                r#"envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="web"}"#,
            ),
            (
                "cluster.web.external.upstream_rq_200",
                r#"envoy_cluster_external_upstream_rq{envoy_response_code="200",envoy_cluster_name="web"}"#,
            ),
            // A dotted cluster name: only its first token is the tag.
            (
                "cluster.dotted.name.upstream_rq_total",
                r#"envoy_cluster_name_upstream_rq_total{envoy_cluster_name="dotted"}"#,
            ),
            ("cluster_manager.active_clusters", "envoy_cluster_manager_active_clusters{}"),
            (
                "http.ingress.downstream_rq_5xx",
                r#"envoy_http_downstream_rq_xx{envoy_response_code_class="5",envoy_http_conn_manager_prefix="ingress"}"#,
            ),
            (
                "http.ingress.downstream_rq_total",
                r#"envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress"}"#,
            ),
            (
                "http.ingress.fault.aborts_injected",
                r#"envoy_http_fault_aborts_injected{envoy_http_conn_manager_prefix="ingress"}"#,
            ),
            (
                "http.ingress.fault.frontend.aborts_injected",
                r#"envoy_http_fault_aborts_injected{envoy_fault_downstream_cluster="frontend",envoy_http_conn_manager_prefix="ingress"}"#,
            ),
            (
                "http.ingress.user_agent.ios.downstream_rq_total",
                r#"envoy_http_user_agent_downstream_rq_total{envoy_http_user_agent="ios",envoy_http_conn_manager_prefix="ingress"}"#,
            ),
            (
                "listener.127.0.0.1_0.http.ingress.downstream_rq_2xx",
                r#"envoy_listener_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="ingress",envoy_listener_address="127.0.0.1_0"}"#,
            ),
            (
                "listener.admin.http.admin.downstream_rq_4xx",
                r#"envoy_listener_admin_http_downstream_rq_xx{envoy_response_code_class="4",envoy_http_conn_manager_prefix="admin"}"#,
            ),
            ("listener.admin.downstream_cx_total", "envoy_listener_admin_downstream_cx_total{}"),
            (
                "listener.admin.main_thread.downstream_cx_total",
                "envoy_listener_admin_main_thread_downstream_cx_total{}",
            ),
            (
                "listener.127.0.0.1_47103.downstream_cx_total",
                r#"envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_47103"}"#,
            ),
            // A listener's stat_prefix is its "address" too.
            ("listener.web.downstream_cx_total", r#"envoy_listener_downstream_cx_total{envoy_listener_address="web"}"#),
            (
                "listener.[__1]_80.downstream_cx_total",
                r#"envoy_listener_downstream_cx_total{envoy_listener_address="[__1]_80"}"#,
            ),
            (
                "listener.127.0.0.1_0.worker_1.downstream_cx_total",
                r#"envoy_listener_worker_downstream_cx_total{envoy_worker_id="1",envoy_listener_address="127.0.0.1_0"}"#,
            ),
            (
                "listener.web.worker_0.downstream_cx_active",
                r#"envoy_listener_worker_downstream_cx_active{envoy_worker_id="0",envoy_listener_address="web"}"#,
            ),
            ("listener_manager.listener_added", "envoy_listener_manager_listener_added{}"),
            ("server.worker_0.watchdog_miss", r#"envoy_server_worker_watchdog_miss{envoy_worker_id="0"}"#),
            ("server.main_thread.watchdog_miss", "envoy_server_main_thread_watchdog_miss{}"),
            ("server.live", "envoy_server_live{}"),
            (
                "thread_local_cluster_manager.worker_1.clusters_inflated",
                r#"envoy_thread_local_cluster_manager_worker_clusters_inflated{envoy_worker_id="1"}"#,
            ),
            ("tcp.tcp_stats.downstream_cx_total", r#"envoy_tcp_downstream_cx_total{envoy_tcp_prefix="tcp_stats"}"#),
            (
                "rl.http_local_rate_limit.enabled",
                r#"envoy_http_local_rate_limit_enabled{envoy_local_http_ratelimit_prefix="rl"}"#,
            ),
            (
                "vhost.vh.vcluster.vc1.upstream_rq_200",
                r#"envoy_vhost_vcluster_upstream_rq{envoy_response_code="200",envoy_virtual_cluster="vc1",envoy_virtual_host="vh"}"#,
            ),
            (
                "vhost.vh.route.myroute.upstream_rq_2xx",
                r#"envoy_vhost_route_upstream_rq_xx{envoy_response_code_class="2",envoy_virtual_host="vh",envoy_route="myroute"}"#,
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(series(name), expected, "{name}");
        }
    }

    #[test]
    fn token_patterns() {
        let cases = [
            ("mongo.db.collection.users.callsite.login.query.total", "envoy_mongo_collection_callsite_query_total"),
            ("mongo.db.collection.users.query.total", "envoy_mongo_collection_query_total"),
            ("mongo.db.cmd.insert.total", "envoy_mongo_cmd_total"),
            ("cluster.grpc_up.grpc.Svc.Method.success", "envoy_cluster_grpc_success"),
            ("http.ingress.rds.routes.v1.config_reload", "envoy_http_rds_config_reload"),
            ("redis.cache.command.get.total", "envoy_redis_command_get_total"),
        ];
        for (name, metric) in cases {
            assert_eq!(prometheus_name(&extract(name).name), metric, "{name}");
        }
        let grpc = extract("cluster.grpc_up.grpc.Svc.Method.success").tags;
        let grpc: Vec<(&str, &str)> = grpc.iter().map(|(k, v)| (k.as_ref(), v.as_str())).collect();
        assert_eq!(
            grpc,
            [
                ("envoy_grpc_bridge_method", "Method"),
                ("envoy_grpc_bridge_service", "Svc"),
                ("envoy_cluster_name", "grpc_up")
            ]
        );
        let mongo = extract("mongo.db.collection.users.callsite.login.query.total").tags;
        let labels: Vec<&str> = mongo.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(labels, ["envoy_mongo_callsite", "envoy_mongo_collection", "envoy_mongo_prefix"]);
        assert_eq!(extract("http.ingress.rds.routes.v1.config_reload").tags[0].1, "routes.v1");
    }

    #[test]
    fn names_without_tags_stay_whole() {
        for name in ["cluster.only_two", "tcp.x", "listener..x", "http", "", "a_rq_2xx_total", "x.upstream_rq_20000"] {
            let x = extract(name);
            assert_eq!(x.name, name);
            assert!(x.tags.is_empty(), "{name}: {:?}", x.tags);
        }
    }

    #[test]
    fn every_default_compiles_and_regex_keys() {
        assert_eq!(TagProducer::envoy_defaults().extractors.len(), DEFAULTS.len());
        assert_eq!(regex_first_token(r"^listener\..*"), Some("listener"));
        assert_eq!(regex_first_token(r"^(?:listener|server)\."), None);
        assert_eq!(regex_first_token(r"_rq_(\d)xx$"), None);
        // Envoy keys a regex by a non-empty first word only.
        assert_eq!(regex_first_token(r"^\.(x)"), None);
    }
}
