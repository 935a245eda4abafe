//! The connection manager's configuration, checked and built from
//! `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier, ServerHeaderTransformation as PbServerHeaderTransformation, StripPortMode,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpConnectionManager,
};
use http::HeaderValue;

use super::client_cert::ClientCertConfig;
use super::path_normalization::{EscapedSlashes, PathNormalization};
use super::rds::{build_table, RouteConfigProviderManager, Routes};
use super::stats::{HcmListenerStats, HcmStats, Http1CodecStats};
use crate::access_log::{self, AccessLogger};
use crate::config::config_source::{Source, SubscriptionSource};
use crate::config::{self, ConfigError, FieldPath};
use crate::extensions::filters::http::filter::StreamFilterFactory;
use crate::extensions::filters::http::router::{self, Router};
use crate::extensions::{self, FactoryContext, HttpFilterContext};
use crate::formatter::HeadersUsed;
use crate::http::http2::codec::ServerConfig;
use crate::http::http2::{Http2Options, LazyHttp2Stats};
use crate::network::drain::IDLE_DRAIN_GRACE;
use crate::runtime::Fraction;
use crate::tracing::{CustomTag, HcmTracing, OperationName, Sampling, TracingStats};

/// `server_header_transformation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHeader {
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

/// `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderscoreAction {
    Allow,
    RejectRequest,
    DropHeader,
}

/// `codec_type`: which codec serves a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecChoice {
    /// HTTP/2 when the connection starts with its preface, else HTTP/1.
    Auto,
    Http1,
    Http2,
}

/// Everything a worker needs to serve HTTP on a connection.
#[derive(Debug)]
pub struct HcmConfig {
    pub stat_prefix: String,
    /// `upgrade_configs`: the upgrade types (lower case) this connection manager
    /// tunnels, and whether each is on unless a route says otherwise.
    pub upgrades: Vec<(String, bool)>,
    /// The listener's `bypass_overload_manager`: no overload action applies.
    pub bypass_overload: bool,
    pub stats: HcmStats,
    pub codec_stats: Http1CodecStats,
    pub codec: CodecChoice,
    /// `http2_protocol_options`, for HTTP/2 connections: the codec's config,
    /// built here once and borrowed by every connection.
    pub http2: ServerConfig,
    /// `http2.*`: one set per process, as Envoy's.
    pub http2_stats: LazyHttp2Stats,
    /// The admin's `/healthcheck/fail` state: connections drain while it is set.
    pub health_check_failed: Arc<std::sync::atomic::AtomicBool>,
    pub listener_stats: HcmListenerStats,
    pub routes: Routes,
    /// Decoder filters in config order, the router excluded (it is the terminal stage).
    pub filters: Vec<Arc<dyn StreamFilterFactory>>,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub server_name: HeaderValue,
    pub server_header: ServerHeader,
    pub generate_request_id: bool,
    pub idle_timeout: Option<Duration>,
    /// `drain_timeout`: how long an idle HTTP/1 connection stays open once it
    /// drains (after `idle_timeout`, or as its listener or the server drains),
    /// for a last request answered with `connection: close`.
    pub drain_timeout: Duration,
    /// `delayed_close_timeout` (1 s by default; `None` when 0, which turns it
    /// off): how long a connection Courier closes after a local reply, a
    /// protocol error or a drain waits, its response written, for the client
    /// to close first (Envoy's `FlushWriteAndDelay`).
    pub delayed_close_timeout: Option<Duration>,
    /// `local_reply_config`: how the proxy's own replies are rewritten.
    pub local_reply: Option<super::local_reply_config::LocalReplyConfig>,
    pub max_headers_count: usize,
    /// The listener's `per_connection_buffer_limit_bytes`: the most of a request
    /// body the router keeps for retries.
    pub buffer_limit: u32,
    /// `common_http_protocol_options.max_requests_per_connection`: the response to
    /// the Nth request closes the connection (`None`: unlimited).
    pub max_requests_per_connection: Option<u32>,
    pub max_request_headers_bytes: usize,
    pub max_stream_duration: Option<Duration>,
    pub underscore_action: UnderscoreAction,
    pub request_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    pub stream_idle_timeout: Option<Duration>,
    pub strip_matching_host_port: bool,
    pub strip_any_host_port: bool,
    /// `via`: appended to the `via` header of requests and responses.
    pub via: Option<HeaderValue>,
    /// `add_user_agent`: the service cluster and node the requests are marked with.
    pub user_agent: Option<UserAgent>,
    /// `normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action`.
    pub path_normalization: PathNormalization,
    /// `http_protocol_options.accept_http_10` (else HTTP/1.0 gets 426).
    pub accept_http_10: bool,
    /// `http_protocol_options.allow_custom_methods`: any token is a method, not
    /// only those Envoy's parser lists.
    pub allow_custom_methods: bool,
    /// `http_protocol_options.allow_chunked_length`: `Content-Length` beside
    /// `Transfer-Encoding: chunked` is removed instead of refused.
    pub allow_chunked_length: bool,
    /// `http_protocol_options.allow_absolute_url` (default true).
    pub allow_absolute_url: bool,
    /// `http_protocol_options.enable_trailers`: HTTP/1 trailers are read from
    /// requests and written on chunked responses instead of dropped.
    pub enable_trailers: bool,
    /// `http_protocol_options.default_host_for_http_10`: the Host of an HTTP/1.0
    /// request that has none.
    pub default_host_for_http_10: Option<HeaderValue>,
    pub access_logs: Vec<Arc<dyn AccessLogger>>,
    /// The headers the access logs read: what a stream keeps for its log line.
    pub log_headers: HeadersUsed,
    /// `forward_client_cert_details` / `set_current_client_cert_details`.
    pub client_cert: ClientCertConfig,
    /// `envoy.filters.http.router`, the last of `http_filters`.
    pub router: Router,
    /// The server's drain: close connections after their current request, and
    /// idle ones once the drain time is over.
    pub drain: crate::network::DrainWatch,
    /// `tracing`: `None` costs a request one check.
    pub tracing: Option<HcmTracing>,
}

/// `add_user_agent`: Envoy sets `x-envoy-downstream-service-cluster` to the
/// service cluster, `user-agent` to it when the request has none (or an empty
/// one), and `x-envoy-downstream-service-node` to the node's name when it has one.
#[derive(Debug, Clone)]
pub struct UserAgent {
    pub cluster: HeaderValue,
    pub node: Option<HeaderValue>,
}

impl UserAgent {
    fn new(cluster: &str, node: &str, path: &FieldPath) -> Result<UserAgent, ConfigError> {
        let value = |v: &str, what: &str| {
            HeaderValue::from_str(v).map_err(|_| {
                path.field_error("add_user_agent", format!("the {what} '{v}' is not a valid header value"))
            })
        };
        Ok(UserAgent {
            cluster: value(cluster, "service cluster")?,
            node: if node.is_empty() { None } else { Some(value(node, "node name")?) },
        })
    }
}

/// Envoy's defaults.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Envoy's `delayed_close_timeout` default.
const DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MAX_HEADERS_COUNT: usize = 100;
const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;

/// `None` for a zero duration (Envoy: 0 disables a timeout).
fn timeout(d: &Option<envoy_types::pb::google::protobuf::Duration>, default: Option<Duration>) -> Option<Duration> {
    match d {
        Some(d) => Some(config::duration(d)).filter(|d| !d.is_zero()),
        None => default,
    }
}

impl HcmConfig {
    /// `path` points at the filter's `typed_config`.
    pub fn from_proto(
        p: &HttpConnectionManager,
        path: &FieldPath,
        ctx: &FactoryContext<'_>,
    ) -> Result<HcmConfig, ConfigError> {
        let FactoryContext {
            store,
            clusters,
            cluster_exists,
            health_check_failed,
            drain,
            service_cluster,
            service_node,
            listener_stat_scope,
            listener_buffer_limit,
            listener_bypasses_overload,
            listener_outbound: _,
            node_zone: _,
            secrets: _,
            route_configs,
        } = *ctx;
        let codec = match CodecType::try_from(p.codec_type) {
            Ok(CodecType::Auto) => CodecChoice::Auto,
            Ok(CodecType::Http1) => CodecChoice::Http1,
            Ok(CodecType::Http2) => CodecChoice::Http2,
            _ => return Err(path.field_error("codec_type", "HTTP3 is not supported by Courier")),
        };
        let mut http2 = match &p.http2_protocol_options {
            Some(o) => {
                let mut hp = path.clone();
                hp.push_field("http2_protocol_options");
                Http2Options::from_proto(o, &hp)?
            }
            None => Http2Options::default(),
        };
        // The connection manager's `stream_error_on_invalid_http_message`
        // applies unless the HTTP/2 options override it, as in Envoy.
        let overridden = p
            .http2_protocol_options
            .as_ref()
            .is_some_and(|o| o.override_stream_error_on_invalid_http_message.is_some());
        if let (false, Some(b)) = (overridden, &p.stream_error_on_invalid_http_message) {
            http2.stream_error_on_invalid_http_message = b.value;
        }
        let routes = match &p.route_specifier {
            Some(RouteSpecifier::RouteConfig(rc)) => {
                Routes::Inline(build_table(rc, &path.child("route_config"), store, Some(cluster_exists))?)
            }
            Some(RouteSpecifier::Rds(rds)) => {
                // Envoy's check as it subscribes: a server tells nodes apart by them.
                if service_node.is_empty() || service_cluster.is_empty() {
                    return Err(ConfigError::new(
                        "node",
                        format!(
                            "type.googleapis.com/{}: node 'id' and 'cluster' are required. Set it either in 'node' \
                             config or via --service-node and --service-cluster options.",
                            super::rds::ROUTE_TYPE
                        ),
                    ));
                }
                Routes::Rds(rds_config(rds, &path.child("rds"), &p.stat_prefix, store, route_configs)?)
            }
            Some(RouteSpecifier::ScopedRoutes(_)) => {
                return Err(path.field_error("scoped_routes", "scoped routes are not supported by Courier"))
            }
            None => return Err(path.error("one of route_config or rds is required")),
        };

        let compressor_chain = Arc::default();
        let filter_ctx = HttpFilterContext {
            store,
            hcm_stat_prefix: &p.stat_prefix,
            health_check_failed,
            service_cluster,
            filter_name: "",
            clusters,
            compressor_chain: &compressor_chain,
        };
        let filters = http_filters(p, path, &filter_ctx)?;

        let common = p.common_http_protocol_options.unwrap_or_default();
        #[allow(deprecated)]
        let underscore_action = match HeadersWithUnderscoresAction::try_from(common.headers_with_underscores_action) {
            Ok(HeadersWithUnderscoresAction::RejectRequest) => UnderscoreAction::RejectRequest,
            Ok(HeadersWithUnderscoresAction::DropHeader) => UnderscoreAction::DropHeader,
            _ => UnderscoreAction::Allow,
        };
        let server_header = match PbServerHeaderTransformation::try_from(p.server_header_transformation) {
            Ok(PbServerHeaderTransformation::AppendIfAbsent) => ServerHeader::AppendIfAbsent,
            Ok(PbServerHeaderTransformation::PassThrough) => ServerHeader::PassThrough,
            _ => ServerHeader::Overwrite,
        };
        let server_name = if p.server_name.is_empty() { "envoy" } else { p.server_name.as_str() };
        let server_name = HeaderValue::from_str(server_name)
            .map_err(|_| path.field_error("server_name", "not a valid header value"))?;
        let max_kb = p.max_request_headers_kb.as_ref().map(|v| v.value).unwrap_or(DEFAULT_MAX_REQUEST_HEADERS_KB);
        let mut log_path = path.clone();
        log_path.push_field("access_log");
        let access_logs = access_log::build_access_logs(&p.access_log, &log_path, store)?;
        let mut log_headers = HeadersUsed::default();
        access_logs.iter().for_each(|l| l.headers_used(&mut log_headers));
        let default_host_for_http_10 =
            match p.http_protocol_options.as_ref().map(|o| o.default_host_for_http_10.as_str()) {
                None | Some("") => None,
                Some(host) => Some(HeaderValue::from_str(host).map_err(|_| {
                    let mut p = path.clone();
                    p.push_field("http_protocol_options");
                    p.field_error("default_host_for_http_10", "not a valid header value")
                })?),
            };
        // Courier answers `Expect: 100-continue` itself, as Envoy does by default;
        // relaying the upstream's `100 Continue` instead is not implemented.
        if p.proxy_100_continue {
            return Err(path.field_error(
                "proxy_100_continue",
                "true is not supported by Courier: it answers Expect: 100-continue itself (Envoy's default) \
                 and does not relay the upstream's 100 Continue",
            ));
        }
        let via = if p.via.is_empty() {
            None
        } else {
            Some(HeaderValue::from_str(&p.via).map_err(|_| path.field_error("via", "not a valid header value"))?)
        };
        let user_agent = match p.add_user_agent.as_ref().is_some_and(|b| b.value) {
            true => Some(UserAgent::new(service_cluster, service_node, path)?),
            false => None,
        };
        let (strip_matching_host_port, strip_any_host_port) = match &p.strip_port_mode {
            Some(StripPortMode::StripAnyHostPort(b)) => (p.strip_matching_host_port, *b),
            None => (p.strip_matching_host_port, false),
        };
        let tracing = match &p.tracing {
            Some(t) => {
                let mut tp = path.clone();
                tp.push_field("tracing");
                Some(tracing_config(t, &tp, ctx, &p.stat_prefix)?)
            }
            None => None,
        };
        let start_child_span = start_child_span(p, path, tracing.as_ref())?;
        Ok(HcmConfig {
            stats: HcmStats::new(store, &format!("http.{}.", p.stat_prefix)),
            codec_stats: Http1CodecStats::new(store, "http1."),
            codec,
            http2: ServerConfig::new(http2, max_kb as usize * 1024),
            http2_stats: LazyHttp2Stats::new(store, "http2."),
            health_check_failed: health_check_failed.clone(),
            listener_stats: HcmListenerStats::new(
                store,
                &format!("listener.{listener_stat_scope}.http.{}.", p.stat_prefix),
            ),
            stat_prefix: p.stat_prefix.clone(),
            upgrades: p
                .upgrade_configs
                .iter()
                .map(|u| (u.upgrade_type.to_ascii_lowercase(), u.enabled.is_none_or(|e| e.value)))
                .collect(),
            routes,
            filters,
            use_remote_address: p.use_remote_address.as_ref().is_some_and(|b| b.value),
            xff_num_trusted_hops: p.xff_num_trusted_hops,
            server_name,
            server_header,
            generate_request_id: p.generate_request_id.as_ref().map(|b| b.value).unwrap_or(true),
            idle_timeout: timeout(&common.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT)),
            drain_timeout: p.drain_timeout.as_ref().map_or(IDLE_DRAIN_GRACE, crate::config::duration),
            delayed_close_timeout: Some(crate::config::duration_or(&p.delayed_close_timeout, DELAYED_CLOSE_TIMEOUT))
                .filter(|d| !d.is_zero()),
            local_reply: match &p.local_reply_config {
                Some(c) => {
                    Some(super::local_reply_config::LocalReplyConfig::from_proto(c, &path.child("local_reply_config"))?)
                }
                None => None,
            },
            max_headers_count: common
                .max_headers_count
                .as_ref()
                .map(|v| v.value as usize)
                .unwrap_or(DEFAULT_MAX_HEADERS_COUNT),
            buffer_limit: listener_buffer_limit,
            bypass_overload: listener_bypasses_overload,
            max_requests_per_connection: common.max_requests_per_connection.map(|v| v.value).filter(|m| *m > 0),
            max_request_headers_bytes: max_kb as usize * 1024,
            max_stream_duration: timeout(&common.max_stream_duration, None),
            underscore_action,
            request_timeout: timeout(&p.request_timeout, None),
            request_headers_timeout: timeout(&p.request_headers_timeout, None),
            stream_idle_timeout: timeout(&p.stream_idle_timeout, Some(DEFAULT_STREAM_IDLE_TIMEOUT)),
            strip_matching_host_port,
            strip_any_host_port,
            via,
            user_agent,
            path_normalization: PathNormalization {
                normalize: p.normalize_path.as_ref().is_some_and(|b| b.value),
                merge_slashes: p.merge_slashes,
                escaped_slashes: EscapedSlashes::from_proto(p.path_with_escaped_slashes_action),
            },
            accept_http_10: p.http_protocol_options.as_ref().is_some_and(|o| o.accept_http_10),
            allow_custom_methods: p.http_protocol_options.as_ref().is_some_and(|o| o.allow_custom_methods),
            allow_chunked_length: p.http_protocol_options.as_ref().is_some_and(|o| o.allow_chunked_length),
            enable_trailers: p.http_protocol_options.as_ref().is_some_and(|o| o.enable_trailers),
            allow_absolute_url: p
                .http_protocol_options
                .as_ref()
                .and_then(|o| o.allow_absolute_url.as_ref())
                .is_none_or(|b| b.value),
            default_host_for_http_10,
            access_logs,
            log_headers,
            client_cert: ClientCertConfig::from_proto(
                p.forward_client_cert_details,
                p.set_current_client_cert_details.as_ref(),
                path,
            )?,
            router: Router::new(
                store,
                &format!("http.{}.", p.stat_prefix),
                clusters.clone(),
                listener_buffer_limit,
                start_child_span,
            ),
            drain: drain.clone(),
            tracing,
        })
    }
}

/// Whether each upstream request has a span of its own: the router's
/// `start_child_span` (the last HTTP filter, checked by `http_filters`) or
/// `tracing.spawn_upstream_span`, which replaces it in Envoy (either does);
/// refused with a tracer whose spans make no children, and of no effect
/// without tracing, as in Envoy.
fn start_child_span(
    p: &HttpConnectionManager,
    path: &FieldPath,
    tracing: Option<&HcmTracing>,
) -> Result<bool, ConfigError> {
    let Some(http_filter::ConfigType::TypedConfig(any)) = p.http_filters.last().and_then(|f| f.config_type.as_ref())
    else {
        return Ok(false);
    };
    let mut fp = path.clone();
    fp.push_field("http_filters");
    fp.push_index(p.http_filters.len() - 1);
    fp.push_field("typed_config");
    let config = <envoy_types::pb::envoy::extensions::filters::http::router::v3::Router as prost::Message>::decode(
        any.value.as_slice(),
    )
    .map_err(|e| fp.error(format!("cannot decode '{}': {e}", any.type_url)))?;
    // Deprecated in favour of the upstream tracing options, still what Envoy 1.40 reads.
    #[allow(deprecated)]
    let start = config.start_child_span;
    let spawn = p.tracing.as_ref().and_then(|t| t.spawn_upstream_span).is_some_and(|b| b.value);
    if tracing.is_some_and(|t| !t.driver.spawns_children()) {
        let why = "upstream spans are supported by Courier with envoy.tracers.skywalking only";
        if start {
            return Err(fp.field_error("start_child_span", why));
        }
        if spawn {
            return Err(path.child("tracing").field_error("spawn_upstream_span", why));
        }
    }
    Ok((start || spawn) && tracing.is_some())
}

/// `tracing`: the provider's driver and the connection manager's sampling and
/// tags. Percentages become parts of 10000, as Envoy samples them.
fn tracing_config(
    t: &Tracing,
    path: &FieldPath,
    ctx: &FactoryContext<'_>,
    stat_prefix: &str,
) -> Result<HcmTracing, ConfigError> {
    let Some(provider) = &t.provider else {
        return Err(path.field_error("provider", "a tracing provider is required by Courier"));
    };
    let mut pp = path.clone();
    pp.push_field("provider");
    let driver = extensions::tracers::create_driver(provider, &pp, ctx)?;
    let percent = |p: &Option<envoy_types::pb::envoy::r#type::v3::Percent>| Fraction {
        numerator: p.as_ref().map_or(10_000, |p| (p.value * 100.0).round().clamp(0.0, 10_000.0) as u64),
        denominator: 10_000,
    };
    let mut tags_path = path.clone();
    tags_path.push_field("custom_tags");
    let custom_tags = CustomTag::all_from_proto(&t.custom_tags, &tags_path)?;
    Ok(HcmTracing {
        operation: if ctx.listener_outbound { OperationName::Egress } else { OperationName::Ingress },
        driver,
        sampling: Sampling {
            client: percent(&t.client_sampling),
            random: percent(&t.random_sampling),
            overall: percent(&t.overall_sampling),
        },
        custom_tags,
        max_path_tag_length: t.max_path_tag_length.as_ref().map_or(256, |v| v.value as usize),
        node_id: ctx.service_node.to_owned(),
        zone: ctx.node_zone.to_owned(),
        stats: TracingStats::new(ctx.store, &format!("http.{stat_prefix}.tracing.")),
    })
}

/// The decoder filters; the router must be last and appear once.
fn http_filters(
    p: &HttpConnectionManager,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Vec<Arc<dyn StreamFilterFactory>>, ConfigError> {
    let mut out = Vec::new();
    let n = p.http_filters.len();
    if n == 0 {
        return Err(path.field_error("http_filters", "the last HTTP filter must be envoy.filters.http.router"));
    }
    for (i, f) in p.http_filters.iter().enumerate() {
        let mut fp = path.clone();
        fp.push_field("http_filters");
        fp.push_index(i);
        let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            return Err(fp.field_error("typed_config", format!("HTTP filter '{}' needs a typed_config", f.name)));
        };
        fp.push_field("typed_config");
        let is_router = config::descriptor::type_name(&any.type_url) == router::CONFIG_TYPE;
        match (is_router, i + 1 == n) {
            (true, true) => {}
            (true, false) => {
                return Err(fp.error("envoy.filters.http.router must be the last HTTP filter"));
            }
            (false, true) => {
                return Err(
                    fp.error(format!("the last HTTP filter must be envoy.filters.http.router, not '{}'", f.name))
                );
            }
            (false, false) => {
                let ctx = HttpFilterContext { filter_name: &f.name, ..*ctx };
                out.push(extensions::create_http_filter(any, &fp, &ctx)?);
            }
        }
    }
    Ok(out)
}

/// `rds`: the shared config of its source and name, a file (which must exist
/// as the subscription is made, Envoy's check), the ADS stream or a stream of
/// its own.
fn rds_config(
    rds: &envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds,
    path: &FieldPath,
    stat_prefix: &str,
    store: &Arc<crate::stats::Store>,
    manager: &RouteConfigProviderManager,
) -> Result<Arc<super::rds::RdsRouteConfig>, ConfigError> {
    let source_path = path.child("config_source");
    let Some(source) = &rds.config_source else {
        return Err(path.field_error("config_source", "value is required"));
    };
    let source = SubscriptionSource::from_proto(source, &source_path)?;
    if let Source::Path(file) = &source.source {
        file.check_exists(&source_path)?;
    }
    Ok(manager.get_or_add(source, &rds.route_config_name, stat_prefix, store))
}
