//! The connection manager's side of a request's span (Envoy's `traceRequest`
//! and `HttpTracerUtility::finalizeDownstreamSpan`): the decision, the span
//! opened once the route is known, the decorator's operation name, and the tags
//! Envoy sets, those of the request when the span opens and those of the
//! response when the stream ends.

use http::{HeaderMap, HeaderValue, Method, Uri};

use super::decision::{self, X_CLIENT_TRACE_ID};
use super::{CustomTag, HcmTracing, OperationName, RouteTracing, Span, SpanStart};
use crate::http::headers::{
    X_ENVOY_DECORATOR_OPERATION, X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER, X_ENVOY_ORIGINAL_PATH, X_FORWARDED_PROTO,
    X_REQUEST_ID,
};
use crate::stream_info::{ResponseFlag, ResponseFlags, StreamInfo};

/// A route's `decorator`: its operation and whether it is propagated.
#[derive(Debug, Clone, Copy)]
pub struct DecoratorRef<'a> {
    pub operation: &'a str,
    pub propagate: bool,
}

/// A request's span once started, and whether an ingress response carries
/// the decorator's operation in x-envoy-decorator-operation.
pub struct Started {
    pub span: Option<Box<dyn Span>>,
    pub decorate_response: bool,
}

/// Decides, counts, and opens the request's span with its request tags.
pub fn start(
    cfg: &HcmTracing,
    headers: &mut HeaderMap,
    method: &Method,
    uri: &Uri,
    info: &StreamInfo,
    decorator: Option<DecoratorRef<'_>>,
    route: Option<&RouteTracing>,
) -> Started {
    let sampling = route.map_or(&cfg.sampling, |r| &r.sampling);
    let decision = decision::decide(sampling, headers, info.health_check);
    cfg.stats.charge(decision.reason);
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let start =
        SpanStart { operation: cfg.operation, request_headers: headers, host, path, start: info.start_time, decision };
    let mut span = cfg.driver.start_span(&start);
    if let Some(span) = span.as_deref_mut() {
        request_tags(cfg, span, headers, method, uri, info);
        // The route's tags after the connection manager's: the same name takes the route's.
        custom_tags(cfg.custom_tags.iter().chain(route.map_or(&[][..], |r| &r.custom_tags)), span, headers);
    }
    let mut decorated = None;
    if let Some(d) = decorator.filter(|d| !d.operation.is_empty()) {
        if let Some(span) = span.as_deref_mut() {
            span.set_operation(d.operation);
        }
        decorated = Some(d);
    }
    match cfg.operation {
        // An egress request tells the next hop the operation for its span.
        OperationName::Egress => {
            if let Some(d) = decorated.filter(|d| d.propagate) {
                if let Ok(v) = HeaderValue::from_str(d.operation) {
                    headers.insert(X_ENVOY_DECORATOR_OPERATION, v);
                }
            }
            Started { span, decorate_response: false }
        }
        // An ingress request may name its operation itself; the header stops here.
        OperationName::Ingress => {
            if let Some(op) = headers.remove(X_ENVOY_DECORATOR_OPERATION) {
                if let (Some(span), Ok(name)) = (span.as_deref_mut(), op.to_str()) {
                    if !name.is_empty() {
                        span.set_operation(name);
                        decorated = None;
                    }
                }
            }
            Started { span, decorate_response: decorated.is_some_and(|d| d.propagate) }
        }
    }
}

fn header(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn request_tags(
    cfg: &HcmTracing,
    span: &mut dyn Span,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    info: &StreamInfo,
) {
    span.set_tag("node_id", &cfg.node_id);
    span.set_tag("zone", &cfg.zone);
    if let Some(id) = header(headers, X_REQUEST_ID) {
        span.set_tag("guid:x-request-id", id);
    }
    span.set_tag("http.url", &url(headers, uri, cfg.max_path_tag_length));
    span.set_tag("http.method", method.as_str());
    span.set_tag("downstream_cluster", header(headers, X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER).unwrap_or("-"));
    span.set_tag("user_agent", header(headers, http::header::USER_AGENT).unwrap_or("-"));
    span.set_tag("http.protocol", info.protocol);
    span.set_tag("peer.address", &info.downstream_remote.ip().to_string());
    if let Some(id) = header(headers, X_CLIENT_TRACE_ID) {
        span.set_tag("guid:x-client-trace-id", id);
    }
}

fn custom_tags<'t>(tags: impl Iterator<Item = &'t CustomTag>, span: &mut dyn Span, headers: &HeaderMap) {
    for tag in tags {
        match tag {
            CustomTag::Literal { tag, value } => span.set_tag(tag, value),
            CustomTag::Environment { tag, value } => {
                if !value.is_empty() {
                    span.set_tag(tag, value)
                }
            }
            CustomTag::RequestHeader { tag, name, default } => match header(headers, name) {
                Some(v) => span.set_tag(tag, v),
                None if !default.is_empty() => span.set_tag(tag, default),
                None => {}
            },
        }
    }
}

/// Envoy's `buildUrl`: `<x-forwarded-proto>://<host><path>`, the path before any
/// rewrite, cut at `max_path_tag_length`.
fn url(headers: &HeaderMap, uri: &Uri, max_path: usize) -> String {
    let path =
        header(headers, X_ENVOY_ORIGINAL_PATH).unwrap_or_else(|| uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut end = path.len().min(max_path);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    let scheme = header(headers, X_FORWARDED_PROTO).unwrap_or("");
    let host = header(headers, http::header::HOST).unwrap_or("");
    format!("{scheme}://{host}{}", &path[..end])
}

/// The response's tags, then the span ends (Envoy's `finalizeDownstreamSpan`).
pub fn finish(mut span: Box<dyn Span>, info: &StreamInfo) {
    span.set_tag("request_size", itoa::Buffer::new().format(info.bytes_received));
    span.set_tag("response_size", itoa::Buffer::new().format(info.bytes_sent));
    common_tags(span.as_mut(), info, info.response_code.unwrap_or(0), &info.response_flags);
    span.finish();
}

/// Envoy's `setCommonTags`, in its order (which SkyWalking's tag lists show),
/// with the response's status (0 for none) and flags.
fn common_tags(span: &mut dyn Span, info: &StreamInfo, code: u16, flags: &ResponseFlags) {
    span.set_tag("component", "proxy");
    if let Some(cluster) = &info.upstream_cluster {
        span.set_tag("upstream_cluster", cluster);
        span.set_tag("upstream_cluster.name", cluster);
    }
    span.set_tag("http.status_code", itoa::Buffer::new().format(code));
    span.set_tag("response_flags", &flags.to_short_string());
    if code == 0 || code >= 500 {
        span.set_tag("error", "true");
    }
}

/// An upstream request that failed before a response (Envoy's upstream
/// stream reset): its reason (`remote connection failure`) and the flag it
/// records.
pub struct UpstreamFailure<'a> {
    pub reason: &'a str,
    pub flag: Option<ResponseFlag>,
}

/// The tags of a child span when its upstream request ends, then it ends
/// (Envoy's `finalizeUpstreamSpan`, on the upstream request's own stream
/// info): the upstream's protocol and address (`peer.address` too), then the
/// common tags. A failed request is tagged `error` and `error.reason` first,
/// with no protocol (`-`) and no status (`0`), as Envoy's.
pub fn finish_upstream(mut span: Box<dyn Span>, info: &StreamInfo, failure: Option<&UpstreamFailure<'_>>) {
    if let Some(f) = failure {
        span.set_tag("error", "true");
        span.set_tag("error.reason", f.reason);
    }
    let protocol = if failure.is_some() { None } else { info.upstream_protocol };
    span.set_tag("http.protocol", protocol.unwrap_or("-"));
    if let Some(host) = info.upstream_host {
        let address = host.to_string();
        span.set_tag("upstream_address", &address);
        span.set_tag("peer.address", &address);
    }
    let (code, flags) = match failure {
        Some(f) => {
            let mut flags = ResponseFlags::default();
            if let Some(flag) = f.flag {
                flags.set(flag);
            }
            (0, flags)
        }
        None => (info.response_code.unwrap_or(0), info.response_flags),
    };
    common_tags(span.as_mut(), info, code, &flags);
    span.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_uses_the_original_path_cut_to_the_limit() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("example.com"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        let uri: Uri = "/new?q=1".parse().unwrap();
        assert_eq!(url(&h, &uri, 256), "http://example.com/new?q=1");
        assert_eq!(url(&h, &uri, 4), "http://example.com/new");
        h.insert(X_ENVOY_ORIGINAL_PATH, HeaderValue::from_static("/old"));
        assert_eq!(url(&h, &uri, 256), "http://example.com/old");
    }
}
