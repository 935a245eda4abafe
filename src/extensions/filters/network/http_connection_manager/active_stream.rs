//! One request/response exchange on a downstream connection (Envoy's
//! `ActiveStream`): request header mutation, route selection, the decoder
//! filters, the router, then the response through the encoder filters.

use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Body;

use super::config::{HcmConfig, ServerHeader, UnderscoreAction};
use super::filter_manager::{self, EncodedPiece, Encoder, StreamState, StreamingEncoder};
use super::path_normalization::Outcome;
use super::response_body::{self, EncodeAborted, ReadWholeError, ResponseBody, StreamCompletion, TunnelEnd};
use crate::extensions::filters::http::filter::{DecodedBody, StreamFilter};
use crate::extensions::filters::http::router::{Routed, RouterRequest};
use crate::formatter::{FormatContext, HeaderLookup, KeptHeaders};
use crate::http::body::RequestBody;
use crate::http::local_reply::LocalReply;
use crate::http::{grpc, header_map_pool, headers, http1};
use crate::network::ConnectionInfo;
use crate::overload::{self, OverloadAction};
use crate::router::upstream_request::{self, ActiveRequest, UpstreamResponse};
use crate::router::{ClusterWeightEdits, Route, RouteAction};
use crate::stream_info::{ResponseFlag, StreamInfo};
use crate::tracing::http_tracer::{self, DecoratorRef};
use crate::tracing::{HcmTracing, Span};
use crate::upstream::conn_pool::UpstreamResponseBody;
use crate::upstream::ThreadLocalCluster;

/// The stream's timers that its route may change, as Envoy re-arms them once
/// the route is known: the idle timeout (the connection manager's
/// `stream_idle_timeout`, then the route's `idle_timeout` if it has one) and the
/// maximum duration (the connection manager's `max_stream_duration`, then the
/// route's `max_stream_duration.max_stream_duration` if set). `0s` disables either.
#[derive(Debug)]
pub struct StreamTimers {
    idle: Cell<Option<Duration>>,
    max_duration: Cell<Option<Duration>>,
    /// Set when the route changed a timer, so the connection re-arms it.
    changed: Cell<bool>,
}

impl StreamTimers {
    pub fn new(idle: Option<Duration>, max_duration: Option<Duration>) -> StreamTimers {
        StreamTimers { idle: Cell::new(idle), max_duration: Cell::new(max_duration), changed: Cell::new(false) }
    }

    pub fn idle(&self) -> Option<Duration> {
        self.idle.get()
    }

    /// From the stream's start.
    pub fn max_duration(&self) -> Option<Duration> {
        self.max_duration.get()
    }

    /// True once after the route changed a timer.
    pub fn take_changed(&self) -> bool {
        self.changed.replace(false)
    }

    fn apply_route(&self, route: &Route) {
        if let RouteAction::Forward(f) = &route.action {
            if let Some(t) = f.idle_timeout {
                self.idle.set(Some(t).filter(|t| !t.is_zero()));
                self.changed.set(true);
            }
            if let Some(t) = f.max_stream_duration {
                self.max_duration.set(Some(t).filter(|t| !t.is_zero()));
                self.changed.set(true);
            }
        }
    }
}

/// Serves one request to completion of its response headers; the body follows
/// through `ResponseBody`.
/// `body_bytes` counts the request body as the codec decodes it.
pub async fn handle(
    cfg: Arc<HcmConfig>,
    conn: ConnectionInfo,
    req: Request<RequestBody>,
    body_bytes: Rc<Cell<u64>>,
    timers: &StreamTimers,
) -> Response<ResponseBody> {
    let protocol = protocol_name(req.version());
    let local_port = conn.local.port();
    let mut stream = Stream::new(&cfg, conn, protocol);
    stream.body_bytes = Some(body_bytes);
    let (mut parts, body) = req.into_parts();
    let is_head = parts.method == Method::HEAD;

    // Envoy's codec refuses a header name with an underscore before the request
    // exists: its log line has no request.
    if let Some(reply) = stream.reject_underscores(&parts.headers) {
        return stream.reply_without_request(reply);
    }
    // Envoy drops a new request under the stop_accepting_requests overload action
    // as soon as its headers are decoded, before any filter exists.
    if !cfg.bypass_overload && overload::applies(OverloadAction::StopAcceptingRequests) {
        cfg.stats.downstream_rq_overload_close.inc();
        let reply = LocalReply::new(StatusCode::SERVICE_UNAVAILABLE, "envoy overloaded", "overload");
        return stream.local_response(reply, &parts, is_head);
    }
    // An upgrade (`connection: upgrade` + `upgrade`), noted before hop-by-hop
    // removal drops its headers: tunnelled when `upgrade_configs` (and the route)
    // allow its type, else Envoy's 403 once the headers were mutated (so it has an
    // x-request-id). h2c is not an upgrade Envoy honours on HTTP/1: the header is
    // dropped and the request proxied.
    let upgrade = requested_upgrade(&parts.headers).filter(|u| !u.eq_ignore_ascii_case("h2c")).map(|u| {
        let connection = parts.headers.get(http::header::CONNECTION).cloned();
        let value = parts.headers.get(http::header::UPGRADE).cloned();
        (u.to_ascii_lowercase(), connection, value)
    });
    // Chunked framing is kept upstream (hop-by-hop removal drops the header).
    stream.downstream_chunked = parts.headers.contains_key(http::header::TRANSFER_ENCODING);
    if let Err(reply) = stream.sanitize_request(&mut parts) {
        return stream.local_response(*reply, &parts, is_head);
    }
    if !cfg.path_normalization.is_off() || parts.extensions.get::<PathFragment>().is_some() {
        if let Err(reply) = stream.normalize_path(&mut parts) {
            return stream.local_response(*reply, &parts, is_head);
        }
    }
    stream.mutate_request_headers(&mut parts);
    // The connection manager's entry for the type, if it has one. On HTTP/2 the
    // codec refuses `upgrade` headers: an upgrade there is an extended CONNECT,
    // which the connection turned into one (`extended_connect`).
    let upgrade_entry = upgrade
        .as_ref()
        .and_then(|(kind, ..)| cfg.upgrades.iter().find(|(t, _)| t == kind).map(|(_, enabled)| *enabled));
    if let (Some((kind, ..)), None) = (&upgrade, upgrade_entry) {
        return stream.upgrade_refused(kind, &parts, is_head);
    }
    // Taken once: a rerouting filter sees the same table, and an RDS update
    // that lands meanwhile applies to the next request.
    let routes = cfg.routes.snapshot();
    // CONNECT only matches routes with a connect_matcher, which Courier does not
    // support: like Envoy without one, it is a 404.
    if parts.method != Method::CONNECT {
        strip_host_port(&mut parts, &cfg, local_port);
        stream.route = routes.find(&parts).cloned();
    }
    if let Some(r) = &stream.route {
        stream.info.route_name = Some(r.name.clone()).filter(|n| !n.is_empty());
        timers.apply_route(r);
    }
    // A route may turn the connection manager's upgrade on or off.
    if let (Some((kind, connection, value)), Some(hcm_enabled)) = (upgrade, upgrade_entry) {
        let route_says = stream.route.as_ref().and_then(|r| match &r.action {
            RouteAction::Forward(f) => f.upgrades.iter().find(|(t, _)| *t == kind).map(|(_, on)| *on),
            _ => None,
        });
        if !route_says.unwrap_or(hcm_enabled) {
            return stream.upgrade_refused(&kind, &parts, is_head);
        }
        for (name, v) in [(http::header::CONNECTION, connection), (http::header::UPGRADE, value)] {
            if let Some(v) = v {
                parts.headers.insert(name, v);
            }
        }
        cfg.stats.downstream_cx_upgrades_total.inc();
        stream.upgrade = true;
    }
    if let Some(tracing) = &cfg.tracing {
        stream.start_span(tracing, &mut parts);
    }

    let mut filters: Vec<Box<dyn StreamFilter>> = cfg.filters.iter().map(|f| f.create()).collect();
    stream.grpc_request = Some(grpc::is_grpc(&parts.headers));
    let mut decoder_limit = u64::from(cfg.buffer_limit);
    // After a filter cleared the route cache: the route is chosen again, as
    // Envoy's `refreshCachedRoute`, with its timers.
    let mut reroute = |parts: &http::request::Parts, route: &mut Option<Arc<Route>>, info: &mut StreamInfo| {
        if parts.method == Method::CONNECT {
            return;
        }
        *route = routes.find(parts).cloned();
        info.route_name = route.as_ref().map(|r| r.name.clone()).filter(|n| !n.is_empty());
        if let Some(r) = route {
            timers.apply_route(r);
        }
    };
    let state = StreamState { route: &mut stream.route, info: &mut stream.info, buffer_limit: &mut decoder_limit };
    let decoded = if filters.is_empty() {
        Ok(if body.is_end_stream() { DecodedBody::Empty } else { DecodedBody::Unread(body) })
    } else {
        filter_manager::decode(&mut filters, state, &mut parts, body, &mut reroute).await
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(stop) => {
            if stop.reply.status == StatusCode::PAYLOAD_TOO_LARGE {
                cfg.stats.downstream_rq_too_large.inc();
            }
            return stream.finish_local(*stop.reply, &parts, &mut filters[..stop.filters_run], is_head);
        }
    };
    // The router, the terminal decoder filter, awaited here rather than in a
    // further async fn: its future (with the upstream request's) is not moved once
    // more, nor is the upstream response (measured: one more level cost +1.3 %
    // instructions per request, mostly memcpy).
    let route = stream.route.clone();
    let request = RouterRequest {
        route: route.as_ref(),
        info: &mut stream.info,
        span: stream.span.as_deref(),
        child_span: &mut stream.child_span,
        downstream_chunked: stream.downstream_chunked,
    };
    let (routed, cluster_weight) = cfg.router.decode(&mut parts, decoded, request).await;
    stream.cluster_weight = cluster_weight;
    let (upstream, cluster) = match routed {
        Routed::Upstream(response, cluster) => (response, cluster),
        Routed::Reply(reply) => {
            stream.count_protocol_error(&reply);
            return stream.finish_local(reply, &parts, &mut filters, is_head);
        }
        Routed::RouteReply(reply) => {
            stream.count_protocol_error(&reply);
            return stream.build_local(reply, route.as_ref(), &parts, &mut filters, is_head);
        }
        Routed::UpstreamFailed(reply) => {
            stream.count_protocol_error(&reply);
            let mut response = stream.build_local(reply, route.as_ref(), &parts, &mut filters, is_head);
            response.extensions_mut().insert(RepliedAfterUpstream);
            return response;
        }
    };
    let UpstreamResponse { head: mut response, mut body, host: _, service_time, active } = upstream;
    stream.upstream_response_headers(&mut response, service_time, route.as_ref(), &parts);
    let mut buffered = None;
    let upstream_status = response.status.as_u16();
    if !filters.is_empty() {
        match stream.encode_upstream(&mut response, &parts, &mut filters, &mut body).await {
            Ok(None) => {
                // No filter read the body whole: it streams through them.
                let limit = u64::from(cfg.buffer_limit);
                stream.streaming_encoder =
                    Some(StreamingEncoder::new(std::mem::take(&mut filters), route.clone(), limit));
            }
            Ok(whole) => buffered = whole,
            Err(reply) => {
                drop(body);
                // The upstream did answer: Envoy's router counted its code on the
                // headers, before an encoder filter replaced the response.
                cluster.count_response_code(upstream_status);
                return stream.build_local(*reply, route.as_ref(), &parts, &mut [], false);
            }
        }
    }
    let body = UpstreamBody { body, buffered, active, cluster, upstream_status };
    stream.finish_upstream(response, body, parts)
}

/// Envoy's response code details for a QUERY request without a content-type.
const QUERY_MISSING_CONTENT_TYPE: &str = "query_missing_content_type";

/// Envoy's response code details for a path it refused or redirected.
const PATH_NORMALIZATION_FAILED: &str = "path_normalization_failed";

/// Marks a request whose target had a `#fragment` (see `RequestHead::fragment`).
#[derive(Debug, Clone, Copy)]
pub struct PathFragment;

/// The request target as the client sent it, when the request's URI cannot
/// show it (see `RequestHead::target_as_sent`): the access log's `:path`.
#[derive(Debug, Clone)]
pub struct TargetAsSent(pub bytes::Bytes);

/// Marks a response after which the connection must close (a refused request).
#[derive(Debug, Clone, Copy)]
pub struct CloseConnection;

/// Marks a local reply made once the request went upstream (its upstream
/// request failed), not as its head was decoded: closing the connection after
/// it, Envoy does as after an upstream's response (at once when the request
/// was whole, checked against Envoy 1.40 with a refused upstream connection).
#[derive(Debug, Clone, Copy)]
pub struct RepliedAfterUpstream;

/// Which stream timer fired before the response started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTimeout {
    /// `request_timeout`: the request was not whole in time.
    Request,
    /// `stream_idle_timeout`: no activity.
    Idle,
    /// `max_stream_duration`.
    MaxDuration,
}

/// Envoy's reply for a stream whose timer fired before any response: 408 while
/// the request is still arriving, 504 once it was received whole (`decode_complete`;
/// Envoy's `maybeRequestTimeoutCode`). The request itself is gone (its stream was
/// cancelled), so the log has no request headers.
pub fn timeout_reply(
    cfg: &Arc<HcmConfig>,
    conn: ConnectionInfo,
    version: Version,
    timeout: StreamTimeout,
    decode_complete: bool,
) -> Response<ResponseBody> {
    let stats = &cfg.stats;
    let (body, details) = match timeout {
        StreamTimeout::Request => {
            stats.downstream_rq_timeout.inc();
            ("request timeout", "request_overall_timeout")
        }
        StreamTimeout::Idle => {
            stats.downstream_rq_idle_timeout.inc();
            ("stream timeout", "stream_idle_timeout")
        }
        StreamTimeout::MaxDuration => {
            stats.downstream_rq_max_duration_reached.inc();
            ("downstream duration timeout", "max_duration_timeout")
        }
    };
    // The stream was counted when it began; this reply replaces it.
    let stream = Stream::uncounted(cfg, conn, protocol_name(version));
    let status = if decode_complete { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::REQUEST_TIMEOUT };
    let mut reply = LocalReply::new(status, body, details);
    if timeout == StreamTimeout::Idle {
        reply.flag = Some(ResponseFlag::StreamIdleTimeout);
    }
    stream.reply_without_request(reply)
}

/// The reply to a request the codec refused before it became a stream; it is
/// counted and logged as one, as Envoy does.
pub fn codec_error(cfg: &Arc<HcmConfig>, conn: ConnectionInfo, reply: LocalReply) -> Response<ResponseBody> {
    Stream::new(cfg, conn, "HTTP/1.1").reply_without_request(reply)
}

/// `%PROTOCOL%` of a request.
pub(super) fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

/// A stream the codec reset before its request was whole (HTTP/2 header
/// limits): counted and access-logged as Envoy does, with no request, no
/// response (code 0) and `DR`.
pub fn reset_without_request(cfg: &Arc<HcmConfig>, conn: ConnectionInfo, version: Version) {
    let mut stream = Stream::new(cfg, conn, protocol_name(version));
    stream.request_parsed = false;
    stream.info.response_flags.set(ResponseFlag::DownstreamRemoteReset);
    let request = Request::new(()).into_parts().0;
    stream.completion(&request, &HeaderMap::new(), None).downstream_reset();
}

/// After the filters rewrote a body whose length the response declares.
fn set_content_length(parts: &mut http::response::Parts, len: usize) {
    if parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
fn requested_upgrade(h: &HeaderMap) -> Option<&str> {
    let asks = headers::connection_tokens(h).any(|t| t.eq_ignore_ascii_case("upgrade"));
    asks.then(|| h.get(http::header::UPGRADE)?.to_str().ok()).flatten()
}

/// Envoy's `strip_any_host_port` / `strip_matching_host_port`: the port leaves
/// the Host header itself (so routing and the upstream both see the bare host);
/// "matching" means the port the request arrived on.
fn strip_host_port(parts: &mut http::request::Parts, cfg: &HcmConfig, local_port: u16) {
    if !cfg.strip_any_host_port && !cfg.strip_matching_host_port {
        return;
    }
    let Some(host) = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) else { return };
    let Some((name, port)) = host.rsplit_once(':') else { return };
    // `[::1]` without a port has a ':' inside the brackets only.
    if name.is_empty() || (name.starts_with('[') && !name.ends_with(']')) {
        return;
    }
    let strip = cfg.strip_any_host_port || port.parse::<u16>().is_ok_and(|p| p == local_port);
    if strip {
        if let Ok(v) = HeaderValue::from_str(name) {
            parts.headers.insert(http::header::HOST, v);
        }
    }
}

struct Stream {
    cfg: Arc<HcmConfig>,
    info: StreamInfo,
    route: Option<Arc<Route>>,
    /// The picked weighted cluster's own edits, when it has any.
    cluster_weight: Option<Arc<ClusterWeightEdits>>,
    body_bytes: Option<Rc<Cell<u64>>>,
    /// The request arrived chunked.
    downstream_chunked: bool,
    /// The request is an upgrade the configuration allows: its 101 opens a tunnel.
    upgrade: bool,
    /// False for a reply to a request that was never parsed whole.
    request_parsed: bool,
    /// The request's tracing span, under a connection manager with `tracing`.
    span: Option<Box<dyn Span>>,
    /// The upstream request's child span (the router's `start_child_span`).
    child_span: Option<Box<dyn Span>>,
    /// The route's decorator operation an ingress response carries.
    decorated_operation: Option<HeaderValue>,
    /// The encoder filters an upstream response body streams through.
    streaming_encoder: Option<StreamingEncoder>,
    /// Whether the request was gRPC when the filters began (Envoy's
    /// `is_grpc_request_`): a filter that changes its content type (the reverse
    /// bridge's) does not change how a local reply to it is written.
    grpc_request: Option<bool>,
}

impl Stream {
    /// A new stream, counted in `downstream_rq_total`.
    fn new(cfg: &Arc<HcmConfig>, conn: ConnectionInfo, protocol: &'static str) -> Stream {
        cfg.stats.downstream_rq_total.inc();
        if protocol == "HTTP/2" {
            cfg.stats.downstream_rq_http2_total.inc();
        } else {
            cfg.stats.downstream_rq_http1_total.inc();
        }
        Stream::uncounted(cfg, conn, protocol)
    }

    fn uncounted(cfg: &Arc<HcmConfig>, conn: ConnectionInfo, protocol: &'static str) -> Stream {
        Stream {
            cfg: cfg.clone(),
            info: StreamInfo {
                downstream_tls: conn.tls,
                downstream_hello: conn.inspected_hello,
                downstream_local_restored: conn.local_restored,
                downstream_proxy_protocol_tlvs: conn.proxy_protocol_tlvs,
                ..StreamInfo::new(conn.remote, conn.local, protocol)
            },
            route: None,
            cluster_weight: None,
            body_bytes: None,
            downstream_chunked: false,
            upgrade: false,
            request_parsed: true,
            span: None,
            child_span: None,
            decorated_operation: None,
            streaming_encoder: None,
            grpc_request: None,
        }
    }

    /// A local reply to a request that was never parsed whole (a codec error, a
    /// timer that fired first): Envoy's log shows no method, path or request
    /// headers for it (`"- - HTTP/1.1"`).
    fn reply_without_request(mut self, reply: LocalReply) -> Response<ResponseBody> {
        self.request_parsed = false;
        self.local_response(reply, &Request::new(()).into_parts().0, false)
    }

    /// Codec-level checks Envoy applies before any filter runs.
    fn sanitize_request(&mut self, parts: &mut http::request::Parts) -> Result<(), Box<LocalReply>> {
        // Absolute-form target: the URI's authority is the request's authority.
        if let Some(authority) = parts.uri.authority() {
            // Without its userinfo (`user@`), as Envoy takes it.
            let authority = authority.as_str().rsplit('@').next().unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(authority) {
                parts.headers.insert(http::header::HOST, v);
            }
            // A CONNECT's authority-form target has no path (Envoy logs "-").
            if parts.method != Method::CONNECT {
                let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                parts.uri = Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"));
            }
        }
        // Envoy's HTTP/1 codec gives a host-less HTTP/1.0 request this one.
        if let Some(host) = self.cfg.default_host_for_http_10.as_ref().filter(|_| parts.version == Version::HTTP_10) {
            parts.headers.entry(http::header::HOST).or_insert_with(|| host.clone());
        }
        if parts.headers.get(http::header::HOST).is_none() {
            return Err(Box::new(LocalReply::new(StatusCode::BAD_REQUEST, "", "missing_host_header")));
        }
        // Only origin-form targets are served (`OPTIONS *` is not): Envoy answers
        // 404 before the request is routed or its headers are touched.
        if parts.method != Method::CONNECT && !parts.uri.path().starts_with('/') {
            self.cfg.stats.downstream_rq_non_relative_path.inc();
            return Err(Box::new(LocalReply::new(StatusCode::NOT_FOUND, "", "absolute_path_rejected")));
        }
        // A QUERY (RFC 9110's safe method with a body) says what its body is:
        // Envoy refuses one without a content-type.
        if parts.method.as_str() == "QUERY" && !parts.headers.contains_key(http::header::CONTENT_TYPE) {
            return Err(Box::new(LocalReply::new(StatusCode::BAD_REQUEST, "", QUERY_MISSING_CONTENT_TYPE)));
        }
        if self.cfg.underscore_action == UnderscoreAction::DropHeader {
            let with_underscore: Vec<HeaderName> =
                parts.headers.keys().filter(|k| k.as_str().contains('_')).cloned().collect();
            for k in with_underscore {
                self.cfg.codec_stats.dropped_headers_with_underscores.inc();
                parts.headers.remove(k);
            }
        }
        Ok(())
    }

    /// `headers_with_underscores_action: REJECT_REQUEST`: the codec's 400 for a
    /// header name with an underscore.
    /// Envoy's 403 to an upgrade the configuration does not allow; the
    /// connection closes after it.
    fn upgrade_refused(self, kind: &str, parts: &http::request::Parts, is_head: bool) -> Response<ResponseBody> {
        if kind == "websocket" {
            self.cfg.stats.downstream_rq_ws_on_non_ws_route.inc();
        }
        let reply = LocalReply::new(StatusCode::FORBIDDEN, "", "upgrade_failed");
        let mut response = self.local_response(reply, parts, is_head);
        response.extensions_mut().insert(CloseConnection);
        response
    }

    fn reject_underscores(&self, headers: &HeaderMap) -> Option<LocalReply> {
        if self.cfg.underscore_action != UnderscoreAction::RejectRequest
            || !headers.keys().any(|k| k.as_str().contains('_'))
        {
            return None;
        }
        self.cfg.codec_stats.requests_rejected_with_underscores_in_headers.inc();
        self.cfg.stats.downstream_cx_protocol_error.inc();
        Some(
            LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "http1.unexpected_underscore")
                .with_flag(ResponseFlag::DownstreamProtocolError),
        )
    }

    /// The connection manager's path normalisation, before anything reads the
    /// path (Envoy's `maybeNormalizePath`): the request goes on with the new
    /// path, or gets a 400 (a `#fragment` always does), or a 307 to the
    /// normalised path. A gRPC client cannot follow a redirect, so Envoy refuses
    /// its request instead.
    fn normalize_path(&mut self, parts: &mut http::request::Parts) -> Result<(), Box<LocalReply>> {
        let stats = &self.cfg.stats;
        let failed = || {
            stats.downstream_rq_failed_path_normalization.inc();
            Box::new(LocalReply::new(StatusCode::BAD_REQUEST, "", PATH_NORMALIZATION_FAILED))
        };
        // Envoy refuses a fragment in the target whatever the settings.
        if parts.extensions.get::<PathFragment>().is_some() {
            return Err(failed());
        }
        let Some(pq) = parts.uri.path_and_query() else { return Ok(()) };
        // `OPTIONS *` and the like have no path to normalise.
        if !pq.as_str().starts_with('/') {
            return Ok(());
        }
        match self.cfg.path_normalization.apply(pq.as_str()) {
            Outcome::Continue(None) => Ok(()),
            Outcome::Continue(Some(path)) => {
                parts.uri = Uri::try_from(path).map_err(|_| failed())?;
                Ok(())
            }
            Outcome::Reject => Err(failed()),
            Outcome::Redirect(_) if grpc::is_grpc(&parts.headers) => Err(failed()),
            Outcome::Redirect(path) => {
                stats.downstream_rq_redirected_with_normalized_path.inc();
                let mut reply = LocalReply::new(StatusCode::TEMPORARY_REDIRECT, "", PATH_NORMALIZATION_FAILED);
                let location = HeaderValue::from_str(&path).map_err(|_| failed())?;
                reply.headers.insert(http::header::LOCATION, location);
                Err(Box::new(reply))
            }
        }
    }

    /// The scheme the client used, as Envoy writes it in `x-forwarded-proto`.
    fn scheme(&self) -> HeaderValue {
        HeaderValue::from_static(if self.info.downstream_tls.is_some() { "https" } else { "http" })
    }

    /// Envoy's `traceRequest`, once the route is known: the decision, the span,
    /// and the route's decorator.
    fn start_span(&mut self, tracing: &HcmTracing, parts: &mut http::request::Parts) {
        let decorator = self.route.as_ref().and_then(|r| r.decorator.as_ref());
        let decorator = decorator.map(|(operation, propagate)| DecoratorRef { operation, propagate: *propagate });
        let route_tracing = self.route.as_ref().and_then(|r| r.tracing.as_deref());
        let started = http_tracer::start(
            tracing,
            &mut parts.headers,
            &parts.method,
            &parts.uri,
            &self.info,
            decorator,
            route_tracing,
        );
        self.span = started.span;
        if started.decorate_response {
            self.decorated_operation = decorator.and_then(|d| HeaderValue::from_str(d.operation).ok());
        }
    }

    /// Envoy's `mutateRequestHeaders`: hop-by-hop removal, x-forwarded-*,
    /// x-envoy-internal / x-envoy-external-address, `add_user_agent`'s headers,
    /// `via`, x-request-id.
    fn mutate_request_headers(&mut self, parts: &mut http::request::Parts) {
        let h = &mut parts.headers;
        headers::remove_hop_by_hop(h);
        let remote: IpAddr = self.info.downstream_remote.ip();
        let hops = self.cfg.xff_num_trusted_hops;
        if self.cfg.use_remote_address {
            // An edge request: the client is the peer, or with N trusted proxies in
            // front, the Nth address from the right of the incoming x-forwarded-for
            // (the peer when there are fewer). Who the caller is, and what was done
            // to the request before, only a trusted proxy in front may say.
            let client = if hops == 0 { remote } else { headers::xff_client(h, hops - 1).unwrap_or(remote) };
            headers::remove_all(h, headers::EDGE_UNTRUSTED);
            // Envoy appends its own address, not loopback, for a loopback peer.
            let appended = if remote.is_loopback() { headers::local_address() } else { remote };
            headers::append_xff(h, appended);
            h.insert(headers::X_FORWARDED_PROTO, self.scheme());
            if let Ok(v) = HeaderValue::from_str(&client.to_string()) {
                h.insert(headers::X_ENVOY_EXTERNAL_ADDRESS, v);
            }
        } else {
            h.entry(headers::X_FORWARDED_PROTO).or_insert_with(|| self.scheme());
        }
        self.cfg.client_cert.mutate(h, self.info.downstream_tls.as_deref());
        // No client is internal (Envoy 1.40's default), so the control headers
        // only trusted clients may send go, edge request or not.
        headers::remove_all(h, headers::UNTRUSTED_CONTROL);
        if let Some(ua) = &self.cfg.user_agent {
            h.insert(headers::X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER, ua.cluster.clone());
            if h.get(http::header::USER_AGENT).is_none_or(|v| v.is_empty()) {
                h.insert(http::header::USER_AGENT, ua.cluster.clone());
            }
            if let Some(node) = &ua.node {
                h.insert(headers::X_ENVOY_DOWNSTREAM_SERVICE_NODE, node.clone());
            }
        }
        if let Some(via) = &self.cfg.via {
            headers::append_via(h, via);
        }
        // An edge request's x-request-id is not trusted: Envoy makes a new one
        // (preserve_external_request_id is false by default).
        if self.cfg.generate_request_id {
            if self.cfg.use_remote_address {
                h.insert(headers::X_REQUEST_ID, headers::uuid_v4());
            } else {
                h.entry(headers::X_REQUEST_ID).or_insert_with(headers::uuid_v4);
            }
        }
    }

    /// What the connection manager does to an upstream response's headers before
    /// the encoder filters see them.
    fn upstream_response_headers(
        &mut self,
        response: &mut http::response::Parts,
        service_time: Duration,
        route: Option<&Arc<Route>>,
        request: &http::request::Parts,
    ) {
        self.info.first_upstream_rx = Some(self.info.start.elapsed());
        self.info.response_code_details = "via_upstream";
        // The upstream's 101 to an upgrade keeps its `upgrade` (the codec writes
        // `connection: Upgrade`) and, as Envoy's, no service time.
        let switching = self.upgrade && response.status == StatusCode::SWITCHING_PROTOCOLS;
        let upgrade = switching.then(|| response.headers.remove(http::header::UPGRADE)).flatten();
        headers::remove_hop_by_hop(&mut response.headers);
        if let Some(v) = upgrade {
            response.headers.insert(http::header::UPGRADE, v);
        } else if self.upgrade && request.version == Version::HTTP_2 {
            // An extended CONNECT the upstream did not switch: Envoy sends the
            // head alone (`extended_connect`), without its body's headers and
            // without service time (checked against Envoy 1.40).
            response.headers.remove(http::header::CONTENT_LENGTH);
            response.headers.remove(http::header::CONTENT_TYPE);
        } else {
            response
                .headers
                .insert(headers::X_ENVOY_UPSTREAM_SERVICE_TIME, headers::number_value(service_time.as_millis() as u64));
        }
        self.apply_response_headers(response, route, request);
    }

    fn finish_upstream(
        mut self,
        parts: http::response::Parts,
        upstream: UpstreamBody,
        request: http::request::Parts,
    ) -> Response<ResponseBody> {
        let UpstreamBody { body, buffered, active, cluster, upstream_status } = upstream;
        self.info.response_code = Some(parts.status.as_u16());
        let completion = self.completion(&request, &parts.headers, Some((cluster, upstream_status, active)));
        header_map_pool::give_back(request.headers);
        let body = match buffered {
            Some((data, trailers)) => ResponseBody::buffered(data, trailers, completion),
            None => ResponseBody::upstream(body, completion),
        };
        Response::from_parts(parts, body)
    }

    /// The encoder filters on an upstream response: `Some` body when one of
    /// them stopped the headers and so it was read whole (and went through
    /// them); `Err` with the reply that replaces the response.
    async fn encode_upstream(
        &mut self,
        parts: &mut http::response::Parts,
        request: &http::request::Parts,
        filters: &mut [Box<dyn StreamFilter>],
        body: &mut UpstreamResponseBody,
    ) -> Result<Option<(Bytes, Option<HeaderMap>)>, Box<LocalReply>> {
        let end_stream = body.is_end_stream();
        let mut encoder = self.encoder(filters, request);
        let Some(stopped) = encoder.headers(parts, end_stream)? else { return Ok(None) };
        let whole = match response_body::read_upstream_whole(body, encoder.buffer_limit).await {
            Ok((data, trailers)) => encoder.body(parts, stopped, data, trailers),
            Err(ReadWholeError::TooLarge) => Err(Box::new(filter_manager::response_too_large_reply())),
            Err(ReadWholeError::Failed) => Err(Box::new(upstream_request::reset_before_response_reply())),
        };
        let (data, trailers) = whole.inspect_err(|r| self.count_encode_failure(r))?;
        set_content_length(parts, data.len());
        Ok(Some((data, trailers)))
    }

    /// A failed request body (its codec's error) is a protocol error of the
    /// connection, as Envoy counts it, unless the client just went away.
    fn count_protocol_error(&self, reply: &LocalReply) {
        if reply.flag == Some(ResponseFlag::DownstreamProtocolError) && reply.details != http1::CLIENT_GONE {
            self.cfg.stats.downstream_cx_protocol_error.inc();
        }
    }

    fn finish_local(
        self,
        reply: LocalReply,
        request: &http::request::Parts,
        filters: &mut [Box<dyn StreamFilter>],
        is_head: bool,
    ) -> Response<ResponseBody> {
        self.build_local(reply, None, request, filters, is_head)
    }

    /// A local reply before any filter ran (codec-level rejection).
    fn local_response(
        self,
        reply: LocalReply,
        request: &http::request::Parts,
        is_head: bool,
    ) -> Response<ResponseBody> {
        self.build_local(reply, None, request, &mut [], is_head)
    }

    fn build_local(
        mut self,
        reply: LocalReply,
        route: Option<&Arc<Route>>,
        request: &http::request::Parts,
        filters: &mut [Box<dyn StreamFilter>],
        is_head: bool,
    ) -> Response<ResponseBody> {
        let (mut parts, body, close_after) = self.local_parts(reply, route, request);
        let body = if is_head { Bytes::new() } else { body };
        let had_length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
        let (parts, body, close_after) = match self.encode_local(&mut parts, request, filters, body) {
            Ok(body) => (parts, body, close_after),
            // The encoder filters replaced the reply (or its body was over the
            // limit): their reply goes out as it is.
            Err(reply) => {
                let (parts, body, close_after) = self.local_parts(*reply, route, request);
                (parts, if is_head { Bytes::new() } else { body }, close_after)
            }
        };
        self.info.response_code = Some(parts.status.as_u16());
        let completion = self.completion(request, &parts.headers, None);
        // A filter that removed the length (a compressor) has the body framed as
        // it streams, chunked on HTTP/1, as Envoy sends it.
        let unsized_body = had_length && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
        let body = if unsized_body {
            ResponseBody::local_unsized(body, completion)
        } else {
            ResponseBody::local(body, completion)
        };
        let mut response = Response::from_parts(parts, body);
        // After a request the codec or connection manager refused, Envoy closes.
        if close_after {
            response.extensions_mut().insert(CloseConnection);
        }
        response
    }

    /// The head and body of a local reply, with the response headers the route
    /// and the connection manager add, and whether the connection closes after it.
    fn local_parts(
        &mut self,
        mut reply: LocalReply,
        route: Option<&Arc<Route>>,
        request: &http::request::Parts,
    ) -> (http::response::Parts, Bytes, bool) {
        // Envoy closes an HTTP/1 connection after its 400 for a bad request
        // (`onLocalReply`), whoever found the fault, and after refusing a body
        // while it was still arriving (its 413 comes before the request's end).
        let close_after = reply.flag == Some(ResponseFlag::DownstreamProtocolError)
            || reply.details == "missing_host_header"
            || reply.details == QUERY_MISSING_CONTENT_TYPE
            || reply.details == filter_manager::REQUEST_TOO_LARGE
            || (reply.details == PATH_NORMALIZATION_FAILED && reply.status == StatusCode::BAD_REQUEST);
        if let Some(flag) = reply.flag {
            self.info.response_flags.set(flag);
        }
        self.info.response_code_details = reply.details;
        let formatted_type = match &self.cfg.local_reply {
            Some(local_reply) => local_reply.rewrite(&mut reply, request, &mut self.info),
            None => None,
        };
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.headers = reply.headers;
        // A gRPC client reads an error from the headers: Envoy answers its
        // requests 200 with grpc-status and grpc-message, and no body.
        if self.grpc_request.unwrap_or_else(|| grpc::is_grpc(&request.headers)) {
            grpc::error_headers(&mut parts.headers, reply.status, reply.grpc_status, &reply.body);
            self.apply_response_headers(&mut parts, route, request);
            return (parts, Bytes::new(), close_after);
        }
        parts.status = reply.status;
        // As Envoy's `sendLocalReply`: the route's and virtual host's headers
        // first, then the body's type. A reply that names its type keeps it
        // (the sender's headers, an authorization service's denial say, or
        // the route's); added values join into one line, as on Envoy's inline
        // `content-type`; an empty reply has none. A `local_reply_config` body
        // format's type replaces them all.
        self.apply_response_headers(&mut parts, route, request);
        if let Some(formatted) = formatted_type.filter(|_| !reply.body.is_empty()) {
            parts.headers.insert(http::header::CONTENT_TYPE, formatted);
        } else if reply.body.is_empty() {
            parts.headers.remove(http::header::CONTENT_TYPE);
        } else if let Some(joined) = joined_values(&parts.headers, http::header::CONTENT_TYPE) {
            parts.headers.insert(http::header::CONTENT_TYPE, joined);
        } else if !parts.headers.contains_key(http::header::CONTENT_TYPE) {
            parts.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        // An empty reply declares no length: the HTTP/1 codec frames it with
        // `content-length: 0`, HTTP/2 sends none, as Envoy's codecs do.
        if !reply.body.is_empty() && reply.status != StatusCode::NO_CONTENT && !reply.status.is_informational() {
            parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(reply.body.len()));
        }
        (parts, reply.body, close_after)
    }

    /// The encoder filters on a response whose body is at hand (a local reply):
    /// the body as they left it, or the reply that replaces the response.
    fn encode_local(
        &mut self,
        parts: &mut http::response::Parts,
        request: &http::request::Parts,
        filters: &mut [Box<dyn StreamFilter>],
        body: Bytes,
    ) -> Result<Bytes, Box<LocalReply>> {
        if filters.is_empty() {
            return Ok(body);
        }
        let mut encoder = self.encoder(filters, request);
        let end_stream = body.is_empty();
        // The whole body is at hand: where no filter stopped the headers for it,
        // it goes through every filter at once.
        let stopped = encoder.headers(parts, end_stream)?.unwrap_or(encoder.filters.len() - 1);
        if end_stream && encoder.added_body.is_none() {
            return Ok(body);
        }
        let (body, _) = encoder.body(parts, stopped, body, None).inspect_err(|r| self.count_encode_failure(r))?;
        set_content_length(parts, body.len());
        Ok(body)
    }

    fn encoder<'s>(
        &'s mut self,
        filters: &'s mut [Box<dyn StreamFilter>],
        request: &'s http::request::Parts,
    ) -> Encoder<'s> {
        Encoder {
            filters,
            route: self.route.as_ref(),
            info: &mut self.info,
            request_headers: Some(&request.headers),
            buffer_limit: u64::from(self.cfg.buffer_limit),
            added_body: None,
        }
    }

    /// `rs_too_large` for the 500 of a response body over the buffer limit.
    fn count_encode_failure(&self, reply: &LocalReply) {
        if reply.details == filter_manager::RESPONSE_TOO_LARGE {
            self.cfg.stats.rs_too_large.inc();
        }
    }

    /// Route response header edits, `via` and the `server` header.
    fn apply_response_headers(
        &self,
        parts: &mut http::response::Parts,
        route: Option<&Arc<Route>>,
        request: &http::request::Parts,
    ) {
        if let Some(cw) = self.cluster_weight.as_ref().filter(|_| route.is_some()) {
            if !cw.response.is_empty() {
                cw.response.apply_to_response(&mut parts.headers, Some(request), &self.info);
            }
        }
        if let Some(route) = route {
            if !route.response_headers.is_empty() {
                route.response_headers.apply_to_response(&mut parts.headers, Some(request), &self.info);
            }
        }
        // Envoy's `mutateResponseHeaders`, after the route's edits.
        if let Some(via) = &self.cfg.via {
            headers::append_via(&mut parts.headers, via);
        }
        match self.cfg.server_header {
            ServerHeader::Overwrite => {
                parts.headers.insert(http::header::SERVER, self.cfg.server_name.clone());
            }
            ServerHeader::AppendIfAbsent => {
                if !parts.headers.contains_key(http::header::SERVER) {
                    parts.headers.insert(http::header::SERVER, self.cfg.server_name.clone());
                }
            }
            ServerHeader::PassThrough => {}
        }
        if let Some(op) = &self.decorated_operation {
            parts.headers.insert(headers::X_ENVOY_DECORATOR_OPERATION, op.clone());
        }
    }

    fn completion(
        self,
        request: &http::request::Parts,
        response_headers: &HeaderMap,
        upstream: Option<(Rc<ThreadLocalCluster>, u16, ActiveRequest)>,
    ) -> Box<dyn StreamCompletion> {
        let parsed = self.request_parsed;
        let log = (!self.cfg.access_logs.is_empty()).then(|| LogSnapshot {
            method: parsed.then(|| request.method.clone()),
            uri: parsed.then(|| request.uri.clone()),
            target: request.extensions.get::<TargetAsSent>().filter(|_| parsed).map(|t| t.0.clone()),
            request_headers: KeptHeaders::from_map(&request.headers, &self.cfg.log_headers.request),
            response_headers: KeptHeaders::from_map(response_headers, &self.cfg.log_headers.response),
        });
        Box::new(Completion {
            cfg: self.cfg,
            info: self.info,
            log,
            upstream,
            body_bytes: self.body_bytes,
            span: self.span,
            child_span: self.child_span,
            streaming_encoder: self.streaming_encoder,
        })
    }
}

/// An upstream response's body and what lives as long as it.
struct UpstreamBody {
    body: UpstreamResponseBody,
    /// The body as the encoder filters left it, when they read it whole.
    buffered: Option<(Bytes, Option<HeaderMap>)>,
    active: ActiveRequest,
    cluster: Rc<ThreadLocalCluster>,
    /// The status the upstream answered with, which the cluster counts (an
    /// encoder filter may change what the client gets: the gRPC bridge's 503).
    upstream_status: u16,
}

/// What the access log needs after the stream is over.
struct LogSnapshot {
    /// None when no request was parsed (see `reply_without_request`).
    method: Option<Method>,
    uri: Option<Uri>,
    /// The target as sent, when `uri` cannot show it.
    target: Option<bytes::Bytes>,
    request_headers: KeptHeaders,
    response_headers: KeptHeaders,
}

struct Completion {
    body_bytes: Option<Rc<Cell<u64>>>,
    /// The encoder filters, when the response body streams through them.
    streaming_encoder: Option<StreamingEncoder>,
    cfg: Arc<HcmConfig>,
    info: StreamInfo,
    log: Option<LogSnapshot>,
    upstream: Option<(Rc<ThreadLocalCluster>, u16, ActiveRequest)>,
    span: Option<Box<dyn Span>>,
    child_span: Option<Box<dyn Span>>,
}

impl Completion {
    /// An encoder filter's reply (or a held body over the limit) after the
    /// response headers went out: Envoy resets the stream; the reply is only
    /// counted and logged.
    fn abort_encoding(&mut self, reply: &LocalReply) -> EncodeAborted {
        if reply.details == filter_manager::RESPONSE_TOO_LARGE {
            self.cfg.stats.rs_too_large.inc();
        }
        self.info.response_code_details = reply.details;
        self.streaming_encoder = None;
        EncodeAborted
    }

    fn finish_span(&mut self) {
        // The upstream request's span ends first, as Envoy's upstream request
        // is gone before the downstream span is finalized.
        if let Some(span) = self.child_span.take() {
            http_tracer::finish_upstream(span, &self.info, None);
        }
        if let Some(span) = self.span.take() {
            http_tracer::finish(span, &self.info);
        }
    }

    fn write_access_logs(&self, trailers: Option<&HeaderMap>) {
        let Some(log) = &self.log else { return };
        let cx = FormatContext {
            request_headers: Some(&log.request_headers),
            request_method: log.method.as_ref(),
            request_uri: log.uri.as_ref(),
            request_target: log.target.as_deref().and_then(|t| std::str::from_utf8(t).ok()),
            response_headers: Some(&log.response_headers),
            response_trailers: trailers.map(|t| t as &dyn HeaderLookup),
            local_reply_body: None,
            info: &self.info,
        };
        for logger in &self.cfg.access_logs {
            logger.log(&cx);
        }
    }
}

impl StreamCompletion for Completion {
    fn encodes_body(&self) -> bool {
        self.streaming_encoder.is_some()
    }

    fn encode_data(&mut self, data: Bytes, end_stream: bool) -> Result<EncodedPiece, EncodeAborted> {
        let Some(encoder) = &mut self.streaming_encoder else { return Ok((data, None)) };
        encoder.data(&mut self.info, data, end_stream).map_err(|reply| self.abort_encoding(&reply))
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap) -> Result<Bytes, EncodeAborted> {
        let Some(encoder) = &mut self.streaming_encoder else { return Ok(Bytes::new()) };
        encoder.trailers(&mut self.info, trailers).map_err(|reply| self.abort_encoding(&reply))
    }

    /// As Envoy's counts of a tunnel's end (checked against Envoy 1.40): a client
    /// that ended it is a downstream reset (`DC`); one idled out is reset both ways (`SI`).
    fn finish_tunnel(mut self: Box<Self>, sent: u64, end: TunnelEnd) {
        let stats = &self.cfg.stats;
        match end {
            TunnelEnd::Client => {
                self.info.response_flags.set(ResponseFlag::DownstreamConnectionTermination);
                stats.downstream_rq_rx_reset.inc();
            }
            TunnelEnd::Idle => {
                self.info.response_flags.set(ResponseFlag::StreamIdleTimeout);
                stats.downstream_rq_idle_timeout.inc();
                stats.downstream_rq_rx_reset.inc();
                stats.downstream_rq_tx_reset.inc();
            }
            TunnelEnd::StreamReset => {
                self.info.response_flags.set(ResponseFlag::DownstreamRemoteReset);
                stats.downstream_rq_rx_reset.inc();
            }
            TunnelEnd::UpstreamReset => self.info.response_flags.set(ResponseFlag::UpstreamConnectionTermination),
            TunnelEnd::Upstream => {}
        }
        self.finish(sent, None, true);
    }

    fn downstream_reset(mut self: Box<Self>) {
        // No response went out: Envoy logs code 0. A request body cut off by the
        // client's reset made the router reply "protocol error"; that reply was
        // never sent, and the reset (DC) is the cause, as in Envoy's log.
        self.info.response_code = None;
        self.info.response_flags.unset(ResponseFlag::DownstreamProtocolError);
        if !self.info.response_flags.has(ResponseFlag::DownstreamRemoteReset) {
            self.info.response_flags.set(ResponseFlag::DownstreamConnectionTermination);
        }
        if let Some(received) = &self.body_bytes {
            self.info.bytes_received = received.get();
        }
        // An upstream request still held is dropped with the stream.
        self.upstream.take();
        self.finish_span();
        self.write_access_logs(None);
    }

    fn finish(mut self: Box<Self>, bytes_sent: u64, trailers: Option<&HeaderMap>, complete: bool) {
        let stats = &self.cfg.stats;
        self.info.bytes_sent = bytes_sent;
        if let Some(received) = &self.body_bytes {
            self.info.bytes_received = received.get();
        }
        self.info.last_downstream_tx = Some(self.info.start.elapsed());
        if !complete {
            self.info.response_flags.set(ResponseFlag::DownstreamConnectionTermination);
            stats.downstream_rq_tx_reset.inc();
        }
        // As Envoy's `chargeStats`: a health check answered by the health_check
        // filter is not counted as a completed request nor by status class.
        if !self.info.health_check {
            stats.downstream_rq_completed.inc();
            let status = self.info.response_code.unwrap_or(0);
            stats.response_code(status);
            self.cfg.listener_stats.response_code(status);
        }
        if let Some((cluster, code, active)) = self.upstream.take() {
            cluster.count_response_code(code);
            if complete {
                cluster.info.rq_time().record(active.started.elapsed().as_millis() as u64);
            }
            drop(active);
        }
        stats.downstream_rq_time.record(self.info.start.elapsed().as_millis() as u64);
        self.finish_span();
        self.write_access_logs(trailers);
    }
}

/// The values of `name` joined with `,` into one, when there are several.
fn joined_values(headers: &http::HeaderMap, name: http::header::HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let mut joined = first.as_bytes().to_vec();
    let mut several = false;
    for v in values {
        several = true;
        joined.push(b',');
        joined.extend_from_slice(v.as_bytes());
    }
    several.then(|| HeaderValue::from_bytes(&joined).ok()).flatten()
}
