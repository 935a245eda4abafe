//! `envoy.filters.http.grpc_http1_bridge`: lets an HTTP/1.1 client call a gRPC
//! service over HTTP/2, where the answer's status travels in trailers an
//! HTTP/1.1 client does not read.
//!
//! As Envoy 1.40 (tests/compat `filter_grpc_http1_bridge`): a gRPC request
//! (`http::grpc::is_grpc`) that came over HTTP/1.x is *bridged*: its response
//! headers are held back and the body buffered until the trailers, whose
//! `grpc-status` and `grpc-message` then become response headers; a
//! `grpc-status` other than 0 (or not a number) makes the status 503, and the
//! response gets a `content-length` (the HTTP/1.1 codec drops the trailers). A
//! response that ends without trailers goes as it came; one over the buffer
//! limit is Envoy's 500. With `upgrade_protobuf_to_grpc`, a request whose
//! `content-type` is exactly `application/x-protobuf` becomes
//! `application/grpc` (without `content-length`, the route chosen again); when
//! it is also bridged its body is buffered and sent as one gRPC frame, and the
//! answer's first 5 bytes (the frame header) are taken off. With
//! `ignore_query_parameters`, a bridged request's query goes. The filter has no
//! stats and no per-route config, as in Envoy.

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::http::grpc_http1_bridge::v3::Config;
use envoy_types::pb::google::protobuf::Any;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use super::common;
use super::filter::{DataStatus, EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::grpc::{self, GRPC_MESSAGE, GRPC_STATUS};
use crate::http::headers::number_value;

const CONFIG_TYPE: &str = "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: "envoy.filters.http.grpc_http1_bridge",
    config_type: CONFIG_TYPE,
    create,
    per_route: None,
};

/// `(message full name, supported fields)` of the filter's config.
pub const SUPPORTED_FIELDS: &[(&str, &[&str])] =
    &[(CONFIG_TYPE, &["upgrade_protobuf_to_grpc", "ignore_query_parameters"])];

fn create(
    any: &Any,
    path: &FieldPath,
    _ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let c: Config = decode_any(any, path)?;
    Ok(Arc::new(BridgeFactory {
        upgrade_protobuf: c.upgrade_protobuf_to_grpc,
        ignore_query_parameters: c.ignore_query_parameters,
    }))
}

/// The filter's config, shared by every worker.
#[derive(Debug, Clone, Copy)]
pub struct BridgeFactory {
    upgrade_protobuf: bool,
    ignore_query_parameters: bool,
}

impl StreamFilterFactory for BridgeFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(BridgeFilter { config: *self, bridging: false, framing: false, request_len: 0, response_len: 0 })
    }
}

struct BridgeFilter {
    config: BridgeFactory,
    /// A gRPC request over HTTP/1.x: the response's trailers become headers.
    bridging: bool,
    /// An `application/x-protobuf` request upgraded to gRPC: its body gets a
    /// frame header, and the answer loses its (until the first body piece).
    framing: bool,
    /// Bytes of the request body seen so far (while framing).
    request_len: usize,
    /// Bytes of the response body held so far (while bridging).
    response_len: usize,
}

impl StreamFilter for BridgeFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        end_stream: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        if self.config.upgrade_protobuf && grpc::is_protobuf(&parts.headers) {
            self.framing = true;
            parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            parts.headers.remove(CONTENT_LENGTH);
            cx.clear_route_cache();
        }
        self.bridging = cx.info.protocol.starts_with("HTTP/1") && grpc::is_grpc(&parts.headers);
        if self.bridging && self.config.ignore_query_parameters {
            if let Some(uri) = without_query(&parts.uri) {
                parts.uri = uri;
            }
        }
        if self.bridging && self.framing && !end_stream {
            // The body is framed whole, so it is read whole first.
            return FilterStatus::StopIteration;
        }
        FilterStatus::Continue
    }

    fn decode_data(&mut self, data: &mut Bytes, end_stream: bool, cx: &mut StreamContext<'_>) -> DataStatus {
        if !(self.bridging && self.framing) {
            return DataStatus::Continue;
        }
        self.request_len += data.len();
        if !end_stream {
            return DataStatus::StopIterationAndBuffer;
        }
        // A body past what a frame can say (4 GiB) is over any buffer limit first.
        if let Some(header) = grpc::frame_header(self.request_len) {
            cx.prepend_data(Bytes::copy_from_slice(&header));
        }
        DataStatus::Continue
    }

    fn encode_headers(
        &mut self,
        _parts: &mut http::response::Parts,
        end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        if self.bridging && !end_stream {
            EncodeStatus::StopIteration
        } else {
            EncodeStatus::Continue
        }
    }

    fn encode_data(&mut self, data: &mut Bytes, end_stream: bool, _cx: &mut StreamContext<'_>) -> DataStatus {
        if !self.bridging {
            return DataStatus::Continue;
        }
        if self.framing {
            self.framing = false;
            let _ = data.split_to(data.len().min(grpc::FRAME_HEADER_SIZE));
        }
        self.response_len += data.len();
        if end_stream {
            DataStatus::Continue
        } else {
            DataStatus::StopIterationAndBuffer
        }
    }

    fn encode_trailers(&mut self, trailers: &mut HeaderMap, cx: &mut StreamContext<'_>) {
        let Some(response) = cx.held_response.as_deref_mut().filter(|_| self.bridging) else { return };
        if let Some(status) = trailers.get(GRPC_STATUS) {
            let ok = status.to_str().ok().and_then(|s| s.parse::<u64>().ok()) == Some(0);
            if !ok {
                response.status = StatusCode::SERVICE_UNAVAILABLE;
            }
            response.headers.insert(GRPC_STATUS, status.clone());
        }
        if let Some(message) = trailers.get(GRPC_MESSAGE) {
            response.headers.insert(GRPC_MESSAGE, message.clone());
        }
        response.headers.insert(CONTENT_LENGTH, number_value(self.response_len as u64));
    }
}

/// `uri` without its query (Envoy's `ignoreQueryParams`: everything from the `?`).
fn without_query(uri: &http::Uri) -> Option<http::Uri> {
    uri.query()?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(uri.path().parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{any_from_yaml, factory_from, info, request};

    fn filter(yaml: &str) -> Box<dyn StreamFilter> {
        let any = any_from_yaml(CONFIG_TYPE, yaml);
        factory_from(create, "envoy.filters.http.grpc_http1_bridge", &any).expect("valid").create()
    }

    #[test]
    fn upgrades_protobuf_and_frames_the_whole_body() {
        let mut f = filter("{upgrade_protobuf_to_grpc: true, ignore_query_parameters: true}");
        let mut req = request("POST", "/pkg.Svc/Do?x=1", &[("content-type", "application/x-protobuf")]);
        req.headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        assert!(matches!(f.decode_headers(&mut req, false, &mut cx), FilterStatus::StopIteration));
        assert_eq!(req.headers[CONTENT_TYPE], "application/grpc");
        assert!(!req.headers.contains_key(CONTENT_LENGTH));
        assert_eq!(req.uri.to_string(), "/pkg.Svc/Do");
        assert_eq!(f.decode_data(&mut Bytes::from_static(b"ab"), false, &mut cx), DataStatus::StopIterationAndBuffer);
        assert_eq!(f.decode_data(&mut Bytes::from_static(b"cde"), true, &mut cx), DataStatus::Continue);
        assert_eq!(cx.into_requests().prepended_data.as_deref(), Some(&[0, 0, 0, 0, 5][..]));
    }

    #[test]
    fn trailers_become_headers_of_the_held_response() {
        let mut f = filter("{upgrade_protobuf_to_grpc: true}");
        let mut req = request("POST", "/pkg.Svc/Do", &[("content-type", "application/x-protobuf")]);
        let mut info = info();
        let mut cx = StreamContext::new(None, &mut info, None);
        f.decode_headers(&mut req, true, &mut cx);
        let (mut response, ()) = http::Response::new(()).into_parts();
        assert_eq!(f.encode_headers(&mut response, false, &mut cx), EncodeStatus::StopIteration);
        let mut body = Bytes::from_static(b"\0\0\0\0\x03abc");
        assert_eq!(f.encode_data(&mut body, false, &mut cx), DataStatus::StopIterationAndBuffer);
        assert_eq!(body, "abc");
        let mut trailers = HeaderMap::new();
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        trailers.insert(GRPC_MESSAGE, HeaderValue::from_static("gone"));
        let mut cx = StreamContext::new(None, &mut info, None).holding_response(Some(&mut response));
        f.encode_trailers(&mut trailers, &mut cx);
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers[GRPC_STATUS], "5");
        assert_eq!(response.headers[GRPC_MESSAGE], "gone");
        assert_eq!(response.headers[CONTENT_LENGTH], "3");
    }

    #[test]
    fn http2_requests_are_not_bridged() {
        let mut f = filter("{}");
        let mut req = request("POST", "/pkg.Svc/Do?x=1", &[("content-type", "application/grpc")]);
        let mut info = info();
        info.protocol = "HTTP/2";
        let mut cx = StreamContext::new(None, &mut info, None);
        assert!(matches!(f.decode_headers(&mut req, false, &mut cx), FilterStatus::Continue));
        let (mut response, ()) = http::Response::new(()).into_parts();
        assert_eq!(f.encode_headers(&mut response, false, &mut cx), EncodeStatus::Continue);
        assert_eq!(req.uri.to_string(), "/pkg.Svc/Do?x=1");
    }
}
