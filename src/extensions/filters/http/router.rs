//! `envoy.filters.http.router`: the terminal decoder filter. After the other
//! decoder filters it turns the request into a response: the route's direct
//! response or redirect, or the request forwarded to a host of the route's cluster
//! (weighted pick, the route's request edits and rewrites, retries and timeouts in
//! `router::upstream_request`).
//!
//! It is the last entry of `http_filters`, as Envoy requires, and the connection
//! manager calls it where the decoder filters end. It is not a `StreamFilter`:
//! those answer synchronously (or with a boxed future), while the router awaits its
//! upstream, and the stream awaits the router without a box or a dynamic call (one
//! per request on the hottest path). What it returns says how the connection
//! manager goes on: a reply of its own, or the upstream's response to pass through
//! the encoder filters.

use std::rc::Rc;
use std::sync::Arc;

use http::header::HeaderValue;
use http::{Method, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::filter::DecodedBody;
use crate::define_stats;
use crate::http::body::{RequestBodyStream, TransformableBody};
use crate::http::headers;
use crate::http::http1::client_connection::BodyOut;
use crate::http::local_reply::LocalReply;
use crate::router::shadow;
use crate::router::upstream_request::{self, ForwardBody, UpstreamResponse};
use crate::router::{ClusterWeightEdits, Route, RouteAction};
use crate::stats::Store;
use crate::stream_info::{ResponseFlag, StreamInfo};
use crate::thread_local::Slot;
use crate::tracing::{http_tracer, Span};
use crate::upstream::cluster::UpstreamProtocol;
use crate::upstream::drop_overload::Dropped;
use crate::upstream::{ThreadLocalCluster, ThreadLocalClusterManager};

/// The config type of `envoy.filters.http.router` (of its fields only
/// `start_child_span`, read by the connection manager with its tracing).
pub const CONFIG_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";

define_stats! {
    /// The router's `http.<stat_prefix>.*` counters (Envoy's `ALL_ROUTER_STATS`
    /// that Courier maintains).
    #[derive(Debug)]
    pub struct RouterStats {
        counter no_route,
        counter no_cluster,
        counter rq_direct_response,
        counter rq_redirect,
        counter rq_total,
        counter rq_overload_local_reply,
    }
}

/// One connection manager's router, shared by its streams on every worker.
#[derive(Debug)]
pub struct Router {
    stats: RouterStats,
    clusters: Slot<ThreadLocalClusterManager>,
    /// The listener's `per_connection_buffer_limit_bytes`: the most of a request
    /// body kept for retries.
    buffer_limit: u32,
    /// `start_child_span` with tracing: each upstream request has a span of
    /// its own, a child of the request's, and it is what goes upstream.
    start_child_span: bool,
}

/// What the router was given of one request.
pub struct RouterRequest<'a> {
    pub route: Option<&'a Arc<Route>>,
    pub info: &'a mut StreamInfo,
    pub span: Option<&'a dyn Span>,
    /// Where the upstream request's child span goes (`start_child_span`), for
    /// the stream to end when the response does.
    pub child_span: &'a mut Option<Box<dyn Span>>,
    /// The request arrived chunked: it goes upstream chunked too.
    pub downstream_chunked: bool,
}

/// How the router answered a request.
pub enum Routed {
    /// A reply of the router's own (no route, no cluster, a failed upstream).
    Reply(LocalReply),
    /// The route's own reply (direct response, redirect): the route's response
    /// header edits apply to it.
    RouteReply(LocalReply),
    /// The route's upstream request failed (refused, reset, timed out): a
    /// route reply, made once the request went upstream rather than as its
    /// head was decoded (Envoy closes a connection that ends with it as after
    /// an upstream's response).
    UpstreamFailed(LocalReply),
    /// The upstream's response, its body still to come.
    Upstream(UpstreamResponse, Rc<ThreadLocalCluster>),
}

/// The picked weighted cluster's own edits, when it has any: the connection
/// manager applies their response part to whatever the route answers.
pub type PickedClusterEdits = Option<Arc<ClusterWeightEdits>>;

impl Router {
    pub fn new(
        store: &Store,
        prefix: &str,
        clusters: Slot<ThreadLocalClusterManager>,
        buffer_limit: u32,
        start_child_span: bool,
    ) -> Router {
        Router { stats: RouterStats::new(store, prefix), clusters, buffer_limit, start_child_span }
    }

    /// Routes `parts` with `body` (what the decoder filters left of it).
    pub async fn decode(
        &self,
        parts: &mut http::request::Parts,
        body: DecodedBody,
        request: RouterRequest<'_>,
    ) -> (Routed, PickedClusterEdits) {
        let RouterRequest { route, info, span, child_span, downstream_chunked } = request;
        let stats = &self.stats;
        stats.rq_total.inc();
        let Some(route) = route else {
            stats.no_route.inc();
            let reply =
                LocalReply::new(StatusCode::NOT_FOUND, "", "route_not_found").with_flag(ResponseFlag::NoRouteFound);
            return (Routed::Reply(reply), None);
        };
        let action = match &route.action {
            RouteAction::DirectResponse { status, body } => {
                stats.rq_direct_response.inc();
                let mut reply = LocalReply::new(*status, body.clone(), "direct_response");
                // A 201 or 3xx points back at the request's own URL, as Envoy's
                // router adds `location` for them (RFC 9110 §10.2.2).
                if *status == StatusCode::CREATED || status.is_redirection() {
                    if let Ok(location) = HeaderValue::from_str(&request_url(parts)) {
                        reply.headers.insert(http::header::LOCATION, location);
                    }
                }
                return (Routed::RouteReply(reply), None);
            }
            RouteAction::Redirect(redirect) => {
                // Envoy counts a redirect route as a direct response (rq_redirect
                // is for internal redirects).
                stats.rq_direct_response.inc();
                let mut reply = LocalReply::new(redirect.status(), "", "via_route_redirect");
                if let Ok(location) = HeaderValue::from_str(&redirect.location(parts, route)) {
                    reply.headers.insert(http::header::LOCATION, location);
                }
                return (Routed::RouteReply(reply), None);
            }
            RouteAction::Forward(action) => action,
        };
        let random = crate::common::random::next_u64();
        let picked = action.pick_cluster(&parts.headers, random);
        let cluster_weight = picked.and_then(|(_, edits)| edits.cloned());
        let cluster = picked.and_then(|(name, _)| self.clusters.get()?.get(name));
        let Some(cluster) = cluster else {
            stats.no_cluster.inc();
            let reply = LocalReply::new(action.cluster_not_found_response_code, "", "cluster_not_found")
                .with_flag(ResponseFlag::NoClusterFound);
            return (Routed::Reply(reply), cluster_weight);
        };
        info.upstream_cluster = Some(cluster.name.clone());
        // `drop_overloads`: before any edit of the request or choice of a host.
        if let Some(drop) = cluster.info.drop_overload.decide() {
            cluster.count_response_code(503);
            return (Routed::RouteReply(drop_overload_reply(drop)), cluster_weight);
        }

        // Request edits of the route, in Envoy's order: the weighted cluster's
        // edits and host, header edits (every level, each seeing the previous
        // ones' result), then path and host rewrites.
        if let Some(cw) = &cluster_weight {
            if !cw.request.is_empty() {
                cw.request.apply_to_request(parts, info);
            }
            if let Some(host) = &cw.host_rewrite {
                parts.headers.insert(http::header::HOST, host.clone());
            }
        }
        if !route.request_headers.is_empty() {
            route.request_headers.apply_to_request(parts, info);
        }
        let original_path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Some(new_path) = route.rewrite_path(original_path) {
            let original = HeaderValue::from_str(original_path);
            if let Ok(uri) = Uri::try_from(new_path.as_str()) {
                parts.uri = uri;
                if let Ok(v) = original {
                    parts.headers.insert(headers::X_ENVOY_ORIGINAL_PATH, v);
                }
            }
        }
        let new_host = match (&action.host_rewrite_literal, &action.host_rewrite_header) {
            (Some(host), _) => HeaderValue::from_str(host).ok(),
            // Only the first value of this untrusted header, and not an empty one.
            (None, Some(name)) => parts.headers.get(name).filter(|v| !v.is_empty()).cloned(),
            (None, None) => None,
        };
        if let Some(v) = new_host {
            if let Some(original) = parts.headers.insert(http::header::HOST, v) {
                parts.headers.insert(headers::X_ENVOY_ORIGINAL_HOST, original);
            }
        }
        // Copies to the route's mirror clusters, of the request as it goes now,
        // the body teed when it streams.
        let body = if action.mirror_policies.is_empty() {
            body
        } else {
            let clusters = self.clusters.get();
            let shadows = shadow::shadows(&action.mirror_policies, clusters.as_deref(), parts, action.timeout);
            self.send_shadows(shadows, body, &cluster, action.timeout)
        };
        // `x-envoy-expected-rq-timeout-ms` is set per try by the router.
        let body = match body {
            DecodedBody::Empty => ForwardBody::Empty,
            DecodedBody::Buffered(b, None) if b.is_empty() => ForwardBody::Empty,
            DecodedBody::Buffered(b, None) => ForwardBody::Buffered(b),
            // Trailers go as they came, after the body (not replayable for retries).
            DecodedBody::Buffered(b, Some(trailers)) => ForwardBody::Once(Box::pin(
                http_body_util::Full::new(b)
                    .with_trailers(std::future::ready(Some(Ok(trailers))))
                    .map_err(|never| match never {}),
            )),
            DecodedBody::Unread(b) => match RequestBodyStream::start(b).await {
                Ok(b) => ForwardBody::Streaming(b),
                Err(e) => return (Routed::Reply(LocalReply::from_codec_error(e)), cluster_weight),
            },
        };
        // Envoy's HTTP/1 upstream codec sends `content-length: 0` for an empty
        // request whose method may carry a body (its HTTP/2 codec does not).
        // (A body the buffer filter read whole goes with its length instead; one
        // a filter transforms had data, so it streams even if nothing came of it.)
        let body = match body {
            ForwardBody::Streaming(b) if b.is_end_stream() && !b.is_transformed() => ForwardBody::Empty,
            other => other,
        };
        if downstream_chunked && !matches!(body, ForwardBody::Buffered(_)) {
            parts.headers.insert(http::header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        } else if matches!(body, ForwardBody::Empty)
            && cluster.info.protocol_for(parts.version) != UpstreamProtocol::Http2
            && !matches!(parts.method, Method::GET | Method::HEAD | Method::DELETE | Method::TRACE | Method::CONNECT)
            && !parts.headers.contains_key(http::header::CONTENT_LENGTH)
        {
            parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        // Envoy's `router <cluster> egress` span, started with the upstream request.
        if self.start_child_span {
            if let Some(parent) = span {
                let name = format!("router {} egress", cluster.name);
                *child_span = parent.spawn_child(&name, std::time::SystemTime::now());
            }
        }
        // The span that goes upstream, written in for each try once its host is known.
        let injected = child_span.as_deref().or(span);
        match upstream_request::forward(&cluster, action, parts, body, self.buffer_limit, info, injected).await {
            Ok(response) => (Routed::Upstream(response, cluster), cluster_weight),
            Err(reply) => {
                // The upstream request is over: its span ends with the reset's reason.
                if let Some(child) = child_span.take() {
                    let reason = reset_reason(reply.details);
                    let failure = http_tracer::UpstreamFailure { reason: &reason, flag: reply.flag };
                    http_tracer::finish_upstream(child, info, Some(&failure));
                }
                (Routed::UpstreamFailed(reply), cluster_weight)
            }
        }
    }
}

/// Envoy 1.40's reply to a request `drop_overloads` dropped.
fn drop_overload_reply(drop: Dropped) -> LocalReply {
    let (body, details, header, flag) = match drop {
        Dropped::Drawn => ("drop overload", "drop_overload", "x-envoy-drop-overload", ResponseFlag::DropOverload),
        Dropped::Unconditional => (
            "unconditional drop overload",
            "unconditional_drop_overload",
            "x-envoy-unconditional-drop-overload",
            ResponseFlag::UnconditionalDropOverload,
        ),
    };
    let mut reply = LocalReply::new(StatusCode::SERVICE_UNAVAILABLE, body, details).with_flag(flag);
    reply.headers.insert(http::HeaderName::from_static(header), HeaderValue::from_static("true"));
    reply
}

/// Envoy's reset reason as its details carry it
/// (`upstream_reset_before_response_started{remote_connection_failure}`), else
/// the details themselves.
fn reset_reason(details: &str) -> String {
    match details.split_once('{').and_then(|(_, r)| r.strip_suffix('}')) {
        Some(reason) => reason.replace('_', " "),
        None => details.to_owned(),
    }
}

impl Router {
    /// Sends each shadow with its copy of `body`; returns the body to forward
    /// (carrying a tee per shadow when it streams).
    fn send_shadows(
        &self,
        shadows: Vec<shadow::Shadow>,
        body: DecodedBody,
        cluster: &ThreadLocalCluster,
        timeout: Option<std::time::Duration>,
    ) -> DecodedBody {
        let mut body = body;
        for s in shadows {
            let (next, copy) = match body {
                DecodedBody::Empty => (DecodedBody::Empty, BodyOut::Whole(bytes::Bytes::new())),
                DecodedBody::Buffered(data, trailers) => {
                    let copy = BodyOut::Whole(data.clone());
                    (DecodedBody::Buffered(data, trailers), copy)
                }
                DecodedBody::Unread(stream) => {
                    let abandoned = cluster.info.stats.retry_or_shadow_abandoned.clone();
                    let (tee, copy) = shadow::tee(self.buffer_limit as usize, abandoned);
                    (DecodedBody::Unread(stream.transformed(Box::new(tee))), copy)
                }
            };
            body = next;
            s.send(copy, timeout);
        }
        body
    }
}

/// `scheme://host/path?query` of a request (x-forwarded-proto or http).
fn request_url(parts: &http::request::Parts) -> String {
    let scheme = parts.headers.get(headers::X_FORWARDED_PROTO).and_then(|v| v.to_str().ok()).unwrap_or("http");
    let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{path}")
}
