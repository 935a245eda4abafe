//! `envoy.filters.http.grpc_http1_reverse_bridge`: lets a gRPC client call a
//! service that speaks plain HTTP/1.1 — no gRPC framing, no trailers.
//!
//! As Envoy 1.40 (tests/compat `filter_grpc_http1_reverse_bridge`): a gRPC
//! request (`http::grpc::is_grpc`) with a body is *bridged*, unless its route's
//! `FilterConfigPerRoute` says `disabled`. Its `content-type` and `accept`
//! become the configured `content_type` and the route is chosen again; with
//! `withhold_grpc_frames` the body loses its first 5 bytes (the frame header)
//! and `content-length` says so. The answer must have exactly that content
//! type, else it is replaced by a gRPC error (UNKNOWN, "unsupported
//! content-type"). It goes out with the client's content type, status 200 and
//! a `grpc-status` from the upstream's status (200 is 0, others as
//! `grpc::status_for_http`) in trailers the filter adds, also to an answer that
//! had none (`StreamContext::add_trailers`). With `withhold_grpc_frames` the
//! body is held whole and sent as one gRPC frame (`content-length` grown by
//! the header), or, with `response_size_header`, streams behind a frame header
//! whose length that upstream header gives (INTERNAL errors when it is missing
//! or the body is not that long). A body-less answer becomes an empty frame
//! then, while without `withhold_grpc_frames` it gets no trailers, as in Envoy.
//!
//! Envoy strips the frame header from the body's first piece, and refuses the
//! request (UNKNOWN, "invalid request body") when that piece is shorter. Here
//! the body streams through a transform that takes the first 5 bytes however
//! they arrive, and the refusal is made when the declared `content-length` is
//! under 5: a body of unknown length that turns out shorter goes up empty
//! (where Envoy's answer would depend on how the client split it anyway).
//! Envoy has by then sent the request's headers upstream, with a
//! `content-length` wrapped below 0, and leaves that connection waiting; Courier
//! sends nothing upstream. Any local reply to a bridged request (the router's,
//! this one) is of the wrong content type for the filter, which replaces it by
//! its own, as Envoy's does. The filter has no stats, as in Envoy.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::extensions::filters::http::grpc_http1_reverse_bridge::v3::{
    FilterConfig, FilterConfigPerRoute,
};
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use super::common;
use super::filter::{DataStatus, EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::body::BodyTransform;
use crate::http::grpc::{self, GRPC_STATUS};
use crate::http::headers::number_value;
use crate::http::local_reply::LocalReply;
use crate::router::PerRouteConfig;
use crate::stats::Store;

const NAME: &str = "envoy.filters.http.grpc_http1_reverse_bridge";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.grpc_http1_reverse_bridge.v3.FilterConfig";
const PER_ROUTE_TYPE: &str = "envoy.extensions.filters.http.grpc_http1_reverse_bridge.v3.FilterConfigPerRoute";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((PER_ROUTE_TYPE, create_per_route)),
};

/// `(message full name, supported fields)` of the filter's configs.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] = &[
    (CONFIG_TYPE, &["content_type", "withhold_grpc_frames", "response_size_header"]),
    (PER_ROUTE_TYPE, &["disabled"]),
];

/// Envoy's response code details for the filter's replies.
const DATA_TOO_SMALL: &str = "grpc_bridge_data_too_small";
const CONTENT_TYPE_WRONG: &str = "grpc_bridge_content_type_wrong";
const CONTENT_LENGTH_MISSING: &str = "grpc_bridge_content_length_missing";
const CONTENT_LENGTH_WRONG: &str = "grpc_bridge_content_length_wrong";

/// gRPC's INTERNAL, for an upstream's wrong or missing message size.
const GRPC_INTERNAL: u8 = 13;

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: FilterConfig = decode_any(any, path)?;
    if c.content_type.is_empty() {
        return Err(path.field_error("content_type", "value length must be at least 1 characters"));
    }
    let content_type = HeaderValue::from_str(&c.content_type)
        .map_err(|_| path.field_error("content_type", "not a valid header value"))?;
    let response_size_header = match c.response_size_header.as_str() {
        "" => None,
        name => Some(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| path.field_error("response_size_header", format!("'{name}' is not a header name")))?,
        ),
    };
    Ok(Arc::new(ReverseBridgeFactory {
        config: Arc::new(Config { content_type, withhold_grpc_frames: c.withhold_grpc_frames, response_size_header }),
        name: ctx.filter_name.into(),
    }))
}

/// A route's `FilterConfigPerRoute`: whether the filter is off there.
#[derive(Debug, Clone, Copy)]
struct RouteConfig {
    disabled: bool,
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    common::check_supported(any, path)?;
    let c: FilterConfigPerRoute = decode_any(any, path)?;
    Ok(Arc::new(RouteConfig { disabled: c.disabled }))
}

#[derive(Debug)]
struct Config {
    /// What the upstream gets as `content-type` and `accept`, and must answer with.
    content_type: HeaderValue,
    withhold_grpc_frames: bool,
    /// The upstream header that tells the answer's length (with `withhold_grpc_frames`).
    response_size_header: Option<HeaderName>,
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct ReverseBridgeFactory {
    config: Arc<Config>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl StreamFilterFactory for ReverseBridgeFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(ReverseBridgeFilter {
            config: self.config.clone(),
            name: self.name.clone(),
            client_content_type: None,
            grpc_status: 0,
            message_length: None,
            frame_header_sent: false,
            held: BytesMut::new(),
            upstream_bytes: 0,
        })
    }
}

struct ReverseBridgeFilter {
    config: Arc<Config>,
    name: Arc<str>,
    /// The client's `content-type`, once the request is bridged (`Some`: it is).
    client_content_type: Option<HeaderValue>,
    /// What the upstream's status says, for the trailers.
    grpc_status: u8,
    /// The answer's length from `response_size_header`.
    message_length: Option<u64>,
    /// With `message_length`: the frame header went before the first piece.
    frame_header_sent: bool,
    /// The answer so far, held to be framed whole (`withhold_grpc_frames`
    /// without `response_size_header`). Held by the filter, as Envoy's is, so
    /// no buffer limit applies.
    held: BytesMut,
    /// Bytes of the upstream's answer seen.
    upstream_bytes: u64,
}

impl ReverseBridgeFilter {
    fn frames_whole(&self) -> bool {
        self.config.withhold_grpc_frames && self.config.response_size_header.is_none()
    }

    fn add_status_trailer(&self, cx: &mut StreamContext<'_>) {
        cx.add_trailers().insert(GRPC_STATUS, number_value(u64::from(self.grpc_status)));
    }
}

/// A gRPC error reply (status 200) with `message` as its `grpc-message`.
fn grpc_error(message: impl Into<Bytes>, grpc_status: u8, details: &'static str) -> LocalReply {
    LocalReply::new(StatusCode::OK, message, details).with_grpc_status(grpc_status)
}

/// The frame header for an answer of `len` bytes (a length past 4 GiB is cut
/// to 32 bits, as Envoy's `uint32_t`).
fn frame_header(len: u64) -> Bytes {
    let len = (len as u32).to_be_bytes();
    Bytes::copy_from_slice(&[0, len[0], len[1], len[2], len[3]])
}

/// Envoy's `adjustContentLength`: a `content-length` that reads as a number
/// other than 0 becomes `adjust` of it.
fn adjust_content_length(headers: &mut HeaderMap, adjust: impl Fn(u64) -> u64) {
    let length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = length.filter(|&l| l != 0) {
        headers.insert(CONTENT_LENGTH, number_value(adjust(length)));
    }
}

impl StreamFilter for ReverseBridgeFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        if end_stream
            || cx.route.and_then(|r| r.per_filter_config::<RouteConfig>(&self.name)).is_some_and(|c| c.disabled)
        {
            return FilterStatus::Continue;
        }
        if !grpc::is_grpc(&parts.headers) {
            return FilterStatus::Continue;
        }
        let headers = &mut parts.headers;
        self.client_content_type = headers.insert(CONTENT_TYPE, self.config.content_type.clone());
        headers.insert(ACCEPT, self.config.content_type.clone());
        cx.clear_route_cache();
        if self.config.withhold_grpc_frames {
            let declared =
                headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            // A body shorter than a frame header: Envoy's first piece is too. The
            // filter is bridging by then, so the reply passes its `encode_headers`
            // (which finds it of the wrong type, as Envoy's does).
            if declared.is_some_and(|l| l < grpc::FRAME_HEADER_SIZE as u64) {
                let unknown = grpc::status_for_http(StatusCode::OK);
                return FilterStatus::LocalReply(grpc_error("invalid request body", unknown, DATA_TOO_SMALL));
            }
            adjust_content_length(headers, |l| l - grpc::FRAME_HEADER_SIZE as u64);
            cx.transform_request_body(Box::new(StripFrameHeader { left: grpc::FRAME_HEADER_SIZE }));
        }
        FilterStatus::Continue
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        let Some(client_type) = self.client_content_type.clone() else { return EncodeStatus::Continue };
        let headers = &mut parts.headers;
        if headers.get(CONTENT_TYPE) != Some(&self.config.content_type) {
            let message = match headers.get(CONTENT_TYPE) {
                Some(t) => format!(
                    "envoy reverse bridge: upstream responded with unsupported content-type {}, status code {}",
                    String::from_utf8_lossy(t.as_bytes()),
                    parts.status.as_u16()
                ),
                None => format!(
                    "envoy reverse bridge: upstream responded with no content-type header, status code {}",
                    parts.status.as_u16()
                ),
            };
            let unknown = grpc::status_for_http(StatusCode::OK);
            cx.send_local_reply(grpc_error(message, unknown, CONTENT_TYPE_WRONG));
            return EncodeStatus::StopIteration;
        }
        headers.insert(CONTENT_TYPE, client_type);
        if self.config.withhold_grpc_frames {
            match &self.config.response_size_header {
                Some(size_header) => {
                    // The first value, up to a comma (repeated headers read as one).
                    let size = headers.get(size_header).and_then(|v| v.to_str().ok()).and_then(|v| {
                        let first = v.split(',').next().unwrap_or("");
                        first.parse::<u64>().ok()
                    });
                    let Some(size) = size else {
                        let message = "envoy reverse bridge: upstream did not set content length";
                        cx.send_local_reply(grpc_error(message, GRPC_INTERNAL, CONTENT_LENGTH_MISSING));
                        return EncodeStatus::StopIteration;
                    };
                    self.message_length = Some(size);
                    headers.insert(CONTENT_LENGTH, number_value(size + grpc::FRAME_HEADER_SIZE as u64));
                }
                None => adjust_content_length(headers, |l| l + grpc::FRAME_HEADER_SIZE as u64),
            }
        }
        // A 200 is OK: a plain HTTP service's success is the call's.
        self.grpc_status = match parts.status {
            StatusCode::OK => 0,
            other => grpc::status_for_http(other),
        };
        parts.status = StatusCode::OK;
        if end_stream && self.config.withhold_grpc_frames {
            cx.add_data(frame_header(0));
            parts.headers.insert(CONTENT_LENGTH, number_value(grpc::FRAME_HEADER_SIZE as u64));
            self.add_status_trailer(cx);
        }
        EncodeStatus::Continue
    }

    fn encode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        self.upstream_bytes += data.len() as u64;
        if self.client_content_type.is_none() {
            return DataStatus::Continue;
        }
        if let Some(length) = self.message_length.filter(|_| !self.frame_header_sent) {
            cx.prepend_data(frame_header(length));
            self.frame_header_sent = true;
        }
        if end_stream {
            self.add_status_trailer(cx);
            if let Some(length) = self.message_length {
                if self.upstream_bytes != length {
                    let message = "envoy reverse bridge: upstream set incorrect content length";
                    cx.send_local_reply(grpc_error(message, GRPC_INTERNAL, CONTENT_LENGTH_WRONG));
                }
            } else if self.config.withhold_grpc_frames {
                self.held.extend_from_slice(data);
                let whole = self.held.split();
                let mut framed = BytesMut::from(&frame_header(whole.len() as u64)[..]);
                framed.extend_from_slice(&whole);
                *data = framed.freeze();
            }
            return DataStatus::Continue;
        }
        if self.frames_whole() {
            self.held.extend_from_slice(&std::mem::take(data));
            return DataStatus::StopIterationAndBuffer;
        }
        DataStatus::Continue
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        if self.client_content_type.is_none() {
            return;
        }
        trailers.insert(GRPC_STATUS, number_value(u64::from(self.grpc_status)));
        if self.frames_whole() {
            let whole = self.held.split();
            cx.add_data(frame_header(whole.len() as u64));
            cx.add_data(whole.freeze());
        }
    }
}

/// Takes the gRPC frame header off the request body as it streams: its first
/// `left` bytes, however the pieces are cut.
struct StripFrameHeader {
    left: usize,
}

impl BodyTransform for StripFrameHeader {
    fn data(&mut self, mut data: Bytes, _end: bool) -> Bytes {
        let cut = self.left.min(data.len());
        self.left -= cut;
        let _ = data.split_to(cut);
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{any_from_yaml, factory_from, info, request};

    fn filter(yaml: &str) -> Box<dyn StreamFilter> {
        let any = any_from_yaml(CONFIG_TYPE, yaml);
        factory_from(create, NAME, &any).expect("valid").create()
    }

    fn response(status: u16, content_type: &'static str, length: Option<&'static str>) -> http::response::Parts {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = StatusCode::from_u16(status).expect("status");
        parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(l) = length {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from_static(l));
        }
        parts
    }

    #[test]
    fn config_is_checked() {
        use prost::Message;
        let any =
            |c: FilterConfig| Any { type_url: format!("type.googleapis.com/{CONFIG_TYPE}"), value: c.encode_to_vec() };
        let e = factory_from(create, NAME, &any(FilterConfig::default())).expect_err("content_type is required");
        assert!(e.to_string().contains("content_type"), "{e}");
        let c = FilterConfig { content_type: "a/b".into(), response_size_header: "x y".into(), ..Default::default() };
        let e = factory_from(create, NAME, &any(c)).expect_err("not a header name");
        assert!(e.to_string().contains("response_size_header"), "{e}");
    }

    #[test]
    fn a_grpc_request_goes_up_unframed_as_the_configured_type() {
        let mut f = filter("{content_type: application/x-protobuf, withhold_grpc_frames: true}");
        let mut req =
            request("POST", "/pkg.Svc/Do", &[("content-type", "application/grpc+proto"), ("content-length", "8")]);
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        assert!(matches!(f.decode_headers(&mut req, false, &mut cx), FilterStatus::Continue));
        assert_eq!(req.headers[CONTENT_TYPE], "application/x-protobuf");
        assert_eq!(req.headers[ACCEPT], "application/x-protobuf");
        assert_eq!(req.headers[CONTENT_LENGTH], "3");
        let mut transform = cx.into_requests().body_transform.expect("a transform");
        assert_eq!(transform.data(Bytes::from_static(b"\0\0\0"), false), "");
        assert_eq!(transform.data(Bytes::from_static(b"\0\x03a"), false), "a");
        assert_eq!(transform.data(Bytes::from_static(b"bc"), true), "bc");
    }

    #[test]
    fn a_body_shorter_than_a_frame_header_is_refused() {
        let mut f = filter("{content_type: a/b, withhold_grpc_frames: true}");
        let mut req = request("POST", "/", &[("content-type", "application/grpc"), ("content-length", "2")]);
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        let FilterStatus::LocalReply(reply) = f.decode_headers(&mut req, false, &mut cx) else { panic!("a reply") };
        assert_eq!((reply.status, reply.grpc_status, reply.details), (StatusCode::OK, Some(2), DATA_TOO_SMALL));
    }

    #[test]
    fn the_answer_is_framed_whole_with_a_status_trailer_added() {
        let mut f = filter("{content_type: a/b, withhold_grpc_frames: true}");
        let mut req = request("POST", "/", &[("content-type", "application/grpc")]);
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        f.decode_headers(&mut req, false, &mut cx);
        let mut resp = response(404, "a/b", Some("3"));
        assert_eq!(f.encode_headers(&mut resp, false, &mut cx), EncodeStatus::Continue);
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.headers[CONTENT_TYPE], "application/grpc");
        assert_eq!(resp.headers[CONTENT_LENGTH], "8");
        let mut piece = Bytes::from_static(b"ab");
        assert_eq!(f.encode_data(&mut piece, false, &mut cx), DataStatus::StopIterationAndBuffer);
        assert_eq!(piece, "");
        let mut last = Bytes::from_static(b"c");
        assert_eq!(f.encode_data(&mut last, true, &mut cx), DataStatus::Continue);
        assert_eq!(last, &b"\0\0\0\0\x03abc"[..]);
        let requests = cx.into_requests();
        assert_eq!(requests.added_trailers.expect("trailers")[GRPC_STATUS], "12");
    }

    #[test]
    fn an_empty_answer_becomes_an_empty_frame() {
        let mut f = filter("{content_type: a/b, withhold_grpc_frames: true}");
        let mut req = request("POST", "/", &[("content-type", "application/grpc")]);
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        f.decode_headers(&mut req, false, &mut cx);
        let mut resp = response(200, "a/b", Some("0"));
        f.encode_headers(&mut resp, true, &mut cx);
        assert_eq!(resp.headers[CONTENT_LENGTH], "5");
        let requests = cx.into_requests();
        assert_eq!(requests.added_data.as_deref(), Some(&[0u8, 0, 0, 0, 0][..]));
        assert_eq!(requests.added_trailers.expect("trailers")[GRPC_STATUS], "0");
    }

    #[test]
    fn another_content_type_is_a_grpc_error() {
        let mut f = filter("{content_type: a/b}");
        let mut req = request("POST", "/", &[("content-type", "application/grpc")]);
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        f.decode_headers(&mut req, false, &mut cx);
        let mut resp = response(503, "text/plain", None);
        assert_eq!(f.encode_headers(&mut resp, false, &mut cx), EncodeStatus::StopIteration);
        let reply = cx.into_requests().local_reply.expect("a reply");
        assert_eq!(
            reply.body,
            "envoy reverse bridge: upstream responded with unsupported content-type text/plain, status code 503"
        );
        assert_eq!((reply.grpc_status, reply.details), (Some(2), CONTENT_TYPE_WRONG));
    }

    #[test]
    fn not_grpc_or_without_a_body_passes() {
        let mut f = filter("{content_type: a/b, withhold_grpc_frames: true}");
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        let mut req = request("POST", "/", &[("content-type", "application/grpc")]);
        f.decode_headers(&mut req, true, &mut cx);
        assert_eq!(req.headers[CONTENT_TYPE], "application/grpc");
        let mut req = request("POST", "/", &[("content-type", "application/json")]);
        f.decode_headers(&mut req, false, &mut cx);
        let mut resp = response(404, "text/plain", None);
        assert_eq!(f.encode_headers(&mut resp, false, &mut cx), EncodeStatus::Continue);
        assert_eq!(resp.status, StatusCode::NOT_FOUND);
    }
}
