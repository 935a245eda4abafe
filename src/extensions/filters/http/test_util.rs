//! Test helpers for the HTTP filters: configs written as YAML and decoded through
//! Courier's schema pipeline, requests, stream contexts and route tables.

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::parse_yaml, descriptor, proto_json, validate, FieldPath};
use crate::router::{Route, RouteBuildContext, RouteTable};
use crate::stream_info::StreamInfo;

/// `type_name`'s message written in YAML, validated with Envoy's rules and packed
/// in an `Any`.
pub(crate) fn any_from_yaml(type_name: &str, yaml: &str) -> Any {
    let json = parse_yaml(yaml).unwrap_or_else(|e| panic!("bad YAML: {e}"));
    let desc = descriptor::message(type_name).unwrap_or_else(|| panic!("{type_name} not in the schema"));
    let msg = proto_json::decode(&desc, &json, &mut FieldPath::new()).unwrap_or_else(|e| panic!("{e}"));
    validate::validate(&msg, &mut FieldPath::new()).unwrap_or_else(|e| panic!("{e}"));
    Any { type_url: format!("type.googleapis.com/{type_name}"), value: msg.encode_to_vec() }
}

/// The factory `create` (a filter's constructor) makes of `any`, for a filter
/// named `filter_name` in a connection manager `ingress` with a store of its own.
pub(crate) fn factory_from(
    create: crate::extensions::HttpFilterConstructor,
    filter_name: &str,
    any: &Any,
) -> Result<Arc<dyn StreamFilterFactory>, crate::config::ConfigError> {
    let store = Arc::new(crate::stats::Store::new());
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctx = crate::extensions::HttpFilterContext {
        store: &store,
        hcm_stat_prefix: "ingress",
        health_check_failed: &failing,
        service_cluster: "",
        filter_name,
        clusters: &crate::thread_local::ThreadLocalRegistry::new().allocate_slot(),
        compressor_chain: &Arc::default(),
    };
    create(any, &FieldPath::starting_at("http_filters[2].typed_config"), &ctx)
}

/// A route table whose `typed_per_filter_config` entries go through the registry's
/// per-route constructors.
pub(crate) fn route_table(yaml: &str) -> RouteTable {
    let json = parse_yaml(yaml).unwrap_or_else(|e| panic!("bad YAML: {e}"));
    let desc = descriptor::message("envoy.config.route.v3.RouteConfiguration").expect("schema");
    let msg = proto_json::decode(&desc, &json, &mut FieldPath::new()).unwrap_or_else(|e| panic!("{e}"));
    let rc = RouteConfiguration::decode(msg.encode_to_vec().as_slice()).expect("re-decode");
    let per_route = |name: &str, any: &Any, p: &FieldPath| {
        let type_name = descriptor::type_name(&any.type_url);
        match super::HTTP_FILTERS.iter().find_map(|e| e.per_route.filter(|(t, _)| *t == type_name)) {
            Some((_, build)) => build(any, p, &crate::stats::Store::new()).map(Some),
            None => Err(p.error(format!("no per-route config for {name}"))),
        }
    };
    RouteTable::from_proto(
        &rc,
        &FieldPath::starting_at("route_config"),
        &RouteBuildContext {
            per_route: &per_route,
            vhost_cors: Some(&super::cors::vhost_policy),
            cluster_exists: None,
            inventory: &crate::extensions::supported::INVENTORY,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A request with extra headers.
pub(crate) fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("test request").into_parts().0
}

/// Stream info for a downstream connection on 127.0.0.1.
pub(crate) fn info() -> StreamInfo {
    StreamInfo::new(SocketAddr::from(([127, 0, 0, 1], 40000)), SocketAddr::from(([127, 0, 0, 1], 10000)), "HTTP/1.1")
}

/// Runs `decode_headers` with a fresh stream info.
pub(crate) fn decode(
    filter: &mut dyn StreamFilter,
    req: &mut http::request::Parts,
    route: Option<&Arc<Route>>,
) -> FilterStatus {
    let mut info = info();
    decode_with(filter, req, route, &mut info)
}

/// Runs `decode_headers` with the given stream info.
pub(crate) fn decode_with(
    filter: &mut dyn StreamFilter,
    req: &mut http::request::Parts,
    route: Option<&Arc<Route>>,
    info: &mut StreamInfo,
) -> FilterStatus {
    decode_headers(filter, req, route, info, true)
}

/// Runs `decode_headers` on a new stream of `factory` for a `method` request to `path`
/// (host `h`), with the route `table` picks; `end_stream`: the request has no body.
pub(crate) fn decode_routed(
    factory: &dyn StreamFilterFactory,
    table: &RouteTable,
    method: &str,
    path: &str,
    end_stream: bool,
) -> (FilterStatus, Option<u64>) {
    let mut filter = factory.create();
    let mut req = request(method, path, &[("host", "h")]);
    let route = table.find(&req).cloned();
    let mut info = info();
    let mut cx = StreamContext::new(route.as_ref(), &mut info, None);
    let status = filter.decode_headers(&mut req, end_stream, &mut cx);
    (status, cx.into_requests().buffer_limit)
}

fn decode_headers(
    filter: &mut dyn StreamFilter,
    req: &mut http::request::Parts,
    route: Option<&Arc<Route>>,
    info: &mut StreamInfo,
    end_stream: bool,
) -> FilterStatus {
    let mut cx = StreamContext::new(route, info, None);
    filter.decode_headers(req, end_stream, &mut cx)
}

/// Decodes `req` on a new stream of `factory` (with the route `table` picks, if there
/// is a table), then encodes the filter's local reply, or an upstream 200 when it let
/// the request through.
pub(crate) fn decode_then_encode(
    factory: &dyn StreamFilterFactory,
    table: Option<&RouteTable>,
    req: &mut http::request::Parts,
) -> (FilterStatus, http::response::Parts) {
    let route = table.and_then(|t| t.find(req).cloned());
    let mut filter = factory.create();
    let status = decode(filter.as_mut(), req, route.as_ref());
    let mut resp = match &status {
        FilterStatus::LocalReply(r) => response(r.status.as_u16(), r.headers.clone()),
        _ => response(200, http::HeaderMap::new()),
    };
    encode(filter.as_mut(), &mut resp, req);
    (status, resp)
}

/// Runs `encode_headers` on `resp` for the request `req`.
pub(crate) fn encode(filter: &mut dyn StreamFilter, resp: &mut http::response::Parts, req: &http::request::Parts) {
    let mut info = info();
    let mut cx = StreamContext::new(None, &mut info, Some(&req.headers));
    filter.encode_headers(resp, false, &mut cx);
}

/// An empty response with `status` and the given headers.
pub(crate) fn response(status: u16, headers: http::HeaderMap) -> http::response::Parts {
    let mut parts = http::Response::builder().status(status).body(()).expect("test response").into_parts().0;
    parts.headers = headers;
    parts
}
