//! One request/response exchange on a downstream connection (Envoy's
//! `ActiveStream`): request header mutation, route selection, the decoder
//! filters, the router, then the response through the encoder filters.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use super::config::{HcmConfig, ServerHeader, UnderscoreAction};
use crate::formatter::FormatContext;
use crate::http::body::{RequestBodyStream, ResponseBody, StreamCompletion};
use crate::http::filter::{FilterStatus, LocalReply, StreamContext, StreamFilter};
use crate::http::headers;
use crate::http::stream_info::{ResponseFlag, StreamInfo};
use crate::network::ConnectionInfo;
use crate::router::upstream_request::{self, ActiveRequest, RequestBody, UpstreamResponse};
use crate::router::{Route, RouteAction};
use crate::upstream::ThreadLocalCluster;

/// Serves one request to completion of its response headers; the body follows
/// through `ResponseBody`.
pub async fn handle(cfg: Arc<HcmConfig>, conn: ConnectionInfo, req: Request<Incoming>) -> Response<ResponseBody> {
    let stats = &cfg.stats;
    stats.downstream_rq_total.inc();
    stats.downstream_rq_http1_total.inc();
    stats.downstream_rq_active.inc();
    let protocol = match req.version() {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    };
    let mut stream = Stream { cfg: cfg.clone(), info: StreamInfo::new(conn.remote, conn.local, protocol), route: None };
    let (mut parts, body) = req.into_parts();
    let is_head = parts.method == Method::HEAD;

    if let Err(reply) = stream.sanitize_request(&mut parts) {
        return stream.local_response(*reply, &parts, is_head);
    }
    stream.mutate_request_headers(&mut parts);
    stream.route = cfg.routes.find(&route_view(&parts, &cfg)).cloned();
    if let Some(r) = &stream.route {
        stream.info.route_name = Some(r.name.clone()).filter(|n| !n.is_empty());
    }

    // Decoder filters, in order.
    let mut filters: Vec<Box<dyn StreamFilter>> = cfg.filters.iter().map(|f| f.create()).collect();
    let mut body = Some(body);
    let mut buffered: Option<Bytes> = None;
    for i in 0..filters.len() {
        let mut status = {
            let mut cx = StreamContext { route: stream.route.as_ref(), info: &mut stream.info, request_headers: None };
            filters[i].decode_headers(&mut parts, body.as_ref().is_none_or(|b| b.is_end_stream()), &mut cx)
        };
        loop {
            match status {
                FilterStatus::Continue => break,
                FilterStatus::LocalReply(reply) => {
                    return stream.finish_local(reply, &parts, &mut filters[..=i], is_head);
                }
                FilterStatus::ContinueAfter(wait) => {
                    wait.await;
                    break;
                }
                FilterStatus::Decide(decision) => status = decision.await,
                FilterStatus::BufferRequestBody { max_bytes } => {
                    match read_whole_body(body.take(), buffered.take(), max_bytes).await {
                        Ok(bytes) => buffered = Some(bytes),
                        Err(reply) => {
                            if reply.status == StatusCode::PAYLOAD_TOO_LARGE {
                                cfg.stats.downstream_rq_too_large.inc();
                            }
                            return stream.finish_local(reply, &parts, &mut filters[..=i], is_head);
                        }
                    }
                    break;
                }
            }
        }
    }

    // The router: the terminal stage.
    let request_body = match (buffered, body) {
        (Some(b), _) if b.is_empty() => RequestBody::Empty,
        (Some(b), _) => RequestBody::Buffered(b),
        (None, Some(b)) if b.is_end_stream() => RequestBody::Empty,
        (None, Some(b)) => match RequestBodyStream::start(b).await {
            Ok(b) => RequestBody::Streaming(b),
            Err(_) => {
                cfg.stats.downstream_cx_protocol_error.inc();
                let reply = LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "http1.codec_error")
                    .with_flag(ResponseFlag::DownstreamProtocolError);
                return stream.finish_local(reply, &parts, &mut filters, is_head);
            }
        },
        (None, None) => RequestBody::Empty,
    };
    stream.route_request(parts, request_body, filters, is_head).await
}

/// The request view used for route matching: Envoy strips the Host port first
/// when `strip_any_host_port` (or `strip_matching_host_port` for port 80) says so.
fn route_view(parts: &http::request::Parts, cfg: &HcmConfig) -> http::request::Parts {
    let mut view = Request::new(());
    *view.method_mut() = parts.method.clone();
    *view.uri_mut() = parts.uri.clone();
    *view.headers_mut() = parts.headers.clone();
    let (mut p, ()) = view.into_parts();
    if cfg.strip_any_host_port || cfg.strip_matching_host_port {
        if let Some(host) = p.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            if let Some((name, port)) = host.rsplit_once(':') {
                let strip = cfg.strip_any_host_port || (port == "80" && !name.ends_with(']'));
                if strip && !name.is_empty() {
                    if let Ok(v) = HeaderValue::from_str(name) {
                        p.headers.insert(http::header::HOST, v);
                    }
                }
            }
        }
    }
    p
}

struct Stream {
    cfg: Arc<HcmConfig>,
    info: StreamInfo,
    route: Option<Arc<Route>>,
}

impl Stream {
    /// Codec-level checks Envoy applies before any filter runs.
    fn sanitize_request(&mut self, parts: &mut http::request::Parts) -> Result<(), Box<LocalReply>> {
        // Absolute-form target: the URI's authority is the request's authority.
        if let Some(authority) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(http::header::HOST, v);
            }
            let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            parts.uri = Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"));
        }
        // hyper bounds its read buffer, not the head: check Envoy's limit on the
        // header map's size (names and values) here.
        let header_bytes: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
        if header_bytes > self.cfg.max_request_headers_bytes {
            self.cfg.stats.downstream_cx_protocol_error.inc();
            return Err(Box::new(
                LocalReply::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Request Header Fields Too Large",
                    "http1.headers_too_large",
                )
                .with_flag(ResponseFlag::DownstreamProtocolError),
            ));
        }
        if parts.headers.get(http::header::HOST).is_none() && parts.version == Version::HTTP_11 {
            return Err(Box::new(
                LocalReply::new(StatusCode::BAD_REQUEST, "missing required header: :authority", "missing_host_header")
                    .with_flag(ResponseFlag::DownstreamProtocolError),
            ));
        }
        if parts.headers.contains_key(http::header::TRANSFER_ENCODING)
            && parts.headers.contains_key(http::header::CONTENT_LENGTH)
        {
            // Request smuggling guard (Envoy: allow_chunked_length is false by default).
            return Err(Box::new(
                LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "http1.content_length_and_chunked_not_allowed")
                    .with_flag(ResponseFlag::DownstreamProtocolError),
            ));
        }
        match self.cfg.underscore_action {
            UnderscoreAction::Allow => {}
            action => {
                let with_underscore: Vec<HeaderName> =
                    parts.headers.keys().filter(|k| k.as_str().contains('_')).cloned().collect();
                if !with_underscore.is_empty() {
                    if action == UnderscoreAction::RejectRequest {
                        return Err(Box::new(
                            LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "unexpected_underscore")
                                .with_flag(ResponseFlag::DownstreamProtocolError),
                        ));
                    }
                    for k in with_underscore {
                        parts.headers.remove(k);
                    }
                }
            }
        }
        Ok(())
    }

    /// Envoy's `mutateRequestHeaders`: hop-by-hop removal, x-forwarded-*,
    /// x-request-id, x-envoy-internal.
    fn mutate_request_headers(&mut self, parts: &mut http::request::Parts) {
        let h = &mut parts.headers;
        headers::remove_hop_by_hop(h);
        let remote: IpAddr = self.info.downstream_remote.ip();
        if self.cfg.use_remote_address {
            headers::append_xff(h, remote);
            h.insert(headers::X_FORWARDED_PROTO, HeaderValue::from_static("http"));
            if headers::is_internal(remote) {
                h.insert(headers::X_ENVOY_INTERNAL, HeaderValue::from_static("true"));
            } else {
                h.remove(headers::X_ENVOY_INTERNAL);
            }
        } else if !h.contains_key(headers::X_FORWARDED_PROTO) {
            h.insert(headers::X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if self.cfg.generate_request_id && !h.contains_key(headers::X_REQUEST_ID) {
            if let Ok(v) = HeaderValue::from_str(&headers::uuid_v4()) {
                h.insert(headers::X_REQUEST_ID, v);
            }
        }
    }

    async fn route_request(
        mut self,
        mut parts: http::request::Parts,
        body: RequestBody,
        mut filters: Vec<Box<dyn StreamFilter>>,
        is_head: bool,
    ) -> Response<ResponseBody> {
        let stats = &self.cfg.stats;
        stats.rq_total.inc();
        let Some(route) = self.route.clone() else {
            stats.no_route.inc();
            let reply =
                LocalReply::new(StatusCode::NOT_FOUND, "", "route_not_found").with_flag(ResponseFlag::NoRouteFound);
            return self.finish_local(reply, &parts, &mut filters, is_head);
        };
        let action = match &route.action {
            RouteAction::DirectResponse { status, body } => {
                stats.rq_direct_response.inc();
                let reply = LocalReply::new(*status, body.clone(), "direct_response");
                return self.finish_route_reply(reply, &route, &parts, &mut filters, is_head);
            }
            RouteAction::Redirect(redirect) => {
                stats.rq_redirect.inc();
                let mut reply = LocalReply::new(redirect.status(), "", "via_route_redirect");
                if let Ok(location) = HeaderValue::from_str(&redirect.location(&parts, &route)) {
                    reply.headers.insert(http::header::LOCATION, location);
                }
                return self.finish_route_reply(reply, &route, &parts, &mut filters, is_head);
            }
            RouteAction::Forward(action) => action,
        };
        let random = crate::common::random::next_u64();
        let cluster_name = action.cluster_name(&parts.headers, random).map(str::to_owned);
        let cluster = cluster_name.as_deref().and_then(|name| self.cfg.clusters.get()?.get(name));
        let Some(cluster) = cluster else {
            stats.no_cluster.inc();
            let reply = LocalReply::new(StatusCode::SERVICE_UNAVAILABLE, "", "cluster_not_found")
                .with_flag(ResponseFlag::NoClusterFound);
            return self.finish_local(reply, &parts, &mut filters, is_head);
        };
        self.info.upstream_cluster = Some(cluster.info.name.clone());

        // Request edits of the route: path and host rewrites, header additions.
        let original_path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        if let Some(new_path) = route.rewrite_path(&original_path) {
            if let Ok(uri) = Uri::try_from(new_path.as_str()) {
                parts.uri = uri;
                if let Ok(v) = HeaderValue::from_str(&original_path) {
                    parts.headers.insert(headers::X_ENVOY_ORIGINAL_PATH, v);
                }
            }
        }
        if let Some(host) = &action.host_rewrite_literal {
            if let Ok(v) = HeaderValue::from_str(host) {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        if let Some(t) = action.timeout {
            let per_try = action.retry_policy.as_ref().and_then(|p| p.per_try_timeout);
            let expected = per_try.map_or(t, |p| p.min(t));
            parts
                .headers
                .insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, HeaderValue::from(expected.as_millis() as u64));
        }
        if !route.request_headers.is_empty() {
            let snapshot = parts.headers.clone();
            let cx = FormatContext {
                request_headers: Some(&snapshot),
                request_method: Some(&parts.method),
                request_uri: Some(&parts.uri),
                response_headers: None,
                response_trailers: None,
                info: &self.info,
            };
            route.request_headers.apply(&mut parts.headers, &cx);
        }

        let forwarded = upstream_request::forward(&cluster, action, &parts, body, &mut self.info).await;
        let upstream = match forwarded {
            Ok(u) => u,
            Err(reply) => return self.finish_local(reply, &parts, &mut filters, is_head),
        };
        self.finish_upstream(upstream, cluster, &route, parts, filters)
    }

    fn finish_upstream(
        mut self,
        upstream: UpstreamResponse,
        cluster: Rc<ThreadLocalCluster>,
        route: &Arc<Route>,
        request: http::request::Parts,
        mut filters: Vec<Box<dyn StreamFilter>>,
    ) -> Response<ResponseBody> {
        let UpstreamResponse { response, client, host: _, service_time, active } = upstream;
        let (mut parts, body) = response.into_parts();
        self.info.first_upstream_rx = Some(self.info.start.elapsed());
        self.info.response_code_details = "via_upstream".into();
        headers::remove_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .insert(headers::X_ENVOY_UPSTREAM_SERVICE_TIME, HeaderValue::from(service_time.as_millis() as u64));
        self.apply_response_headers(&mut parts, Some(route), &request);
        self.encode(&mut parts, &request, &mut filters);
        let status = parts.status.as_u16();
        self.info.response_code = Some(status);
        let completion = self.completion(&request, &parts.headers, Some((cluster, status, active)));
        Response::from_parts(parts, ResponseBody::upstream(body, client, completion))
    }

    /// A reply from the route itself (direct response, redirect): the route's
    /// response header edits apply.
    fn finish_route_reply(
        self,
        reply: LocalReply,
        route: &Arc<Route>,
        request: &http::request::Parts,
        filters: &mut [Box<dyn StreamFilter>],
        is_head: bool,
    ) -> Response<ResponseBody> {
        let route = route.clone();
        self.build_local(reply, Some(&route), request, filters, is_head)
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
        if let Some(flag) = reply.flag {
            self.info.response_flags.set(flag);
        }
        self.info.response_code_details = reply.details.to_string();
        let mut response = Response::new(());
        *response.status_mut() = reply.status;
        let (mut parts, ()) = response.into_parts();
        parts.headers = reply.headers;
        if !reply.body.is_empty() {
            parts.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(reply.body.len()));
        self.apply_response_headers(&mut parts, route, request);
        self.encode(&mut parts, request, filters);
        self.info.response_code = Some(parts.status.as_u16());
        let completion = self.completion(request, &parts.headers, None);
        let body = if is_head { Bytes::new() } else { reply.body };
        Response::from_parts(parts, ResponseBody::local(body, completion))
    }

    /// Route response header edits and the `server` header.
    fn apply_response_headers(
        &self,
        parts: &mut http::response::Parts,
        route: Option<&Arc<Route>>,
        request: &http::request::Parts,
    ) {
        if let Some(route) = route {
            if !route.response_headers.is_empty() {
                let snapshot = parts.headers.clone();
                let cx = FormatContext {
                    request_headers: Some(&request.headers),
                    request_method: Some(&request.method),
                    request_uri: Some(&request.uri),
                    response_headers: Some(&snapshot),
                    response_trailers: None,
                    info: &self.info,
                };
                route.response_headers.apply(&mut parts.headers, &cx);
            }
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
    }

    /// Encoder filters, in reverse order.
    fn encode(
        &mut self,
        parts: &mut http::response::Parts,
        request: &http::request::Parts,
        filters: &mut [Box<dyn StreamFilter>],
    ) {
        for f in filters.iter_mut().rev() {
            let mut cx = StreamContext {
                route: self.route.as_ref(),
                info: &mut self.info,
                request_headers: Some(&request.headers),
            };
            f.encode_headers(parts, &mut cx);
        }
    }

    fn completion(
        self,
        request: &http::request::Parts,
        response_headers: &HeaderMap,
        upstream: Option<(Rc<ThreadLocalCluster>, u16, ActiveRequest)>,
    ) -> Box<dyn StreamCompletion> {
        let log = (!self.cfg.access_logs.is_empty()).then(|| LogSnapshot {
            method: request.method.clone(),
            uri: request.uri.clone(),
            request_headers: request.headers.clone(),
            response_headers: response_headers.clone(),
        });
        Box::new(Completion { cfg: self.cfg, info: self.info, log, upstream })
    }
}

/// What the access log needs after the stream is over.
struct LogSnapshot {
    method: Method,
    uri: Uri,
    request_headers: HeaderMap,
    response_headers: HeaderMap,
}

struct Completion {
    cfg: Arc<HcmConfig>,
    info: StreamInfo,
    log: Option<LogSnapshot>,
    upstream: Option<(Rc<ThreadLocalCluster>, u16, ActiveRequest)>,
}

impl StreamCompletion for Completion {
    fn finish(mut self: Box<Self>, bytes_sent: u64, trailers: Option<&HeaderMap>, complete: bool) {
        let stats = &self.cfg.stats;
        self.info.bytes_sent = bytes_sent;
        self.info.last_downstream_tx = Some(self.info.start.elapsed());
        if !complete {
            self.info.response_flags.set(ResponseFlag::DownstreamConnectionTermination);
            stats.downstream_rq_tx_reset.inc();
        }
        stats.downstream_rq_active.dec();
        stats.downstream_rq_completed.inc();
        let status = self.info.response_code.unwrap_or(0);
        stats.response_code(status);
        if let Some((cluster, code, active)) = self.upstream.take() {
            cluster.count_response_code(code);
            drop(active);
        }
        if let Some(log) = &self.log {
            let cx = FormatContext {
                request_headers: Some(&log.request_headers),
                request_method: Some(&log.method),
                request_uri: Some(&log.uri),
                response_headers: Some(&log.response_headers),
                response_trailers: trailers,
                info: &self.info,
            };
            for logger in &self.cfg.access_logs {
                logger.log(&cx);
            }
        }
    }
}

/// Reads a whole request body (for the buffer filter); 413 past `max_bytes`.
async fn read_whole_body(body: Option<Incoming>, already: Option<Bytes>, max_bytes: u64) -> Result<Bytes, LocalReply> {
    let mut out = already.map(|b| b.to_vec()).unwrap_or_default();
    let Some(mut body) = body else { return Ok(Bytes::from(out)) };
    let too_large = || LocalReply::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", "request_payload_too_large");
    if body.size_hint().lower() > max_bytes {
        return Err(too_large());
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "request_body_error")
                .with_flag(ResponseFlag::DownstreamProtocolError)
        })?;
        if let Some(data) = frame.data_ref() {
            if out.len() as u64 + data.len() as u64 > max_bytes {
                return Err(too_large());
            }
            out.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(out))
}
