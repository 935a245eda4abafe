//! `ext_authz`'s gRPC service: the check is a unary
//! `envoy.service.auth.v3.Authorization/Check` call on an HTTP/2 stream of
//! `envoy_grpc.cluster_name` (within `timeout`; `authority` and
//! `initial_metadata` are refused), its `CheckRequest` describing
//! the request (peers, time, method, path, host, scheme, protocol, headers) as
//! Envoy's `CheckRequestUtils` does. An OK status allows, with the
//! `ok_response`'s headers set (or appended), `headers_to_remove` removed and
//! `response_headers_to_add` added to the response; another status denies with
//! the `denied_response`'s HTTP status (403 if none), headers and body; a call
//! that fails (no answer, a gRPC error, an undecodable message) is an error.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Buf, BufMut, BytesMut};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, GrpcService as GrpcServiceProto, HeaderValueOption, SocketAddress,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::Timestamp;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use prost::Message;

use super::{Allowed, CheckedRequest, Decision};
use crate::config::{duration, ConfigError, FieldPath};
use crate::http::headers;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::http::local_reply::LocalReply;
use crate::router::async_client;
use crate::stream_info::ResponseFlag;
use crate::thread_local::Slot;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::ThreadLocalClusterManager;

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";
/// Envoy's default check timeout for a gRPC service.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// The most of a `CheckResponse` read.
const MAX_RESPONSE: usize = 1 << 20;

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// A compiled `GrpcService` (`envoy_grpc`).
#[derive(Debug)]
pub(super) struct GrpcService {
    cluster: String,
    /// `:authority` of the calls: the cluster's name, as Envoy's gRPC client sends.
    authority: HeaderValue,
    timeout: Duration,
}

impl GrpcService {
    pub fn from_proto(g: &GrpcServiceProto, path: &FieldPath) -> Result<GrpcService, ConfigError> {
        let Some(TargetSpecifier::EnvoyGrpc(target)) = &g.target_specifier else {
            // The supported-fields check refused `google_grpc`.
            return Err(path.error("envoy_grpc must be set"));
        };
        let ep = path.child("envoy_grpc");
        if target.cluster_name.is_empty() {
            return Err(ep.field_error("cluster_name", "value length must be at least 1 characters"));
        }
        if !target.authority.is_empty() {
            return Err(ep.field_error("authority", "not supported by Courier for ext_authz"));
        }
        let authority = HeaderValue::from_str(&target.cluster_name)
            .map_err(|_| ep.field_error("cluster_name", "not a valid authority"))?;
        Ok(GrpcService {
            cluster: target.cluster_name.clone(),
            authority,
            timeout: g.timeout.as_ref().map(duration).filter(|t| !t.is_zero()).unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    pub async fn check(&self, clusters: &Slot<ThreadLocalClusterManager>, request: CheckedRequest) -> Decision {
        let Some(cluster) = clusters.get().and_then(|cm| cm.get(&self.cluster)) else { return Decision::Error };
        let message = check_request(&request);
        let mut body = BytesMut::with_capacity(5 + message.encoded_len());
        body.put_u8(0);
        body.put_u32(message.encoded_len() as u32);
        if message.encode(&mut body).is_err() {
            return Decision::Error;
        }
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(http::header::HOST, self.authority.clone());
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        let millis = self.timeout.as_millis() as u64;
        if let Ok(v) = HeaderValue::from_str(&format!("{millis}m")) {
            headers.insert(GRPC_TIMEOUT, v);
        }
        async_client::mark_internal(&mut headers);
        headers.insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, headers::number_value(millis));
        let out = RequestOut { method: &Method::POST, target: CHECK_PATH, headers: &headers, overrides: &[] };
        // gRPC needs HTTP/2: the cluster's HTTP/2 pool, whatever its configured protocol.
        let sent = async_client::send(
            &cluster,
            &out,
            BodyOut::Whole(body.freeze()),
            Protocol::Http2,
            Some(self.timeout),
            MAX_RESPONSE,
        );
        let Ok(response) = sent.await else { return Decision::Error };
        // The status is in the trailers, or in the headers of a trailers-only answer.
        let grpc_status =
            response.trailers.as_ref().and_then(|t| t.get("grpc-status")).or(response.parts.headers.get("grpc-status"));
        if response.parts.status != StatusCode::OK || grpc_status.is_none_or(|s| s.as_bytes() != b"0") {
            return Decision::Error;
        }
        let mut message = response.body;
        if message.len() < 5 || message[0] != 0 {
            return Decision::Error;
        }
        message.advance(1);
        let len = message.get_u32() as usize;
        let Some(payload) = message.get(..len) else { return Decision::Error };
        match CheckResponse::decode(payload) {
            Ok(answer) => decision(answer),
            Err(_) => Decision::Error,
        }
    }
}

fn address(addr: SocketAddr) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(addr.port()))),
            ..Default::default()
        })),
    }
}

/// Envoy's `CheckRequestUtils::createHttpCheck`: the request as the service sees
/// it. Its headers are Envoy's header map: the pseudo-headers (`:authority` for
/// `host`), then the others, repeated ones joined by `,`. `size` is the body the
/// check carries: none (`with_request_body` is not supported).
fn check_request(r: &CheckedRequest) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    headers.insert(":authority".to_string(), r.host.clone());
    headers.insert(":method".to_string(), r.method.as_str().to_string());
    headers.insert(":path".to_string(), r.path.clone());
    headers.insert(":scheme".to_string(), r.scheme.clone());
    for name in r.headers.keys().filter(|n| **n != http::header::HOST) {
        let values: Vec<&str> = r.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        headers.insert(name.as_str().to_string(), values.join(","));
    }
    let id = r.headers.get(headers::X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let size = 0;
    let since_epoch = r.start_time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(address(r.remote)),
                principal: r.source_principal.clone(),
                certificate: r.source_certificate.clone(),
                ..Default::default()
            }),
            destination: Some(Peer {
                address: Some(address(r.local)),
                principal: r.destination_principal.clone(),
                ..Default::default()
            }),
            request: Some(Request {
                time: Some(time),
                http: Some(HttpRequest {
                    id: id.to_string(),
                    method: r.method.as_str().to_string(),
                    headers,
                    path: r.path.clone(),
                    host: r.host.clone(),
                    scheme: r.scheme.clone(),
                    size,
                    protocol: r.protocol.to_string(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

/// Header options as (name, value, append) triples; a malformed one is skipped.
fn options(list: &[HeaderValueOption]) -> impl Iterator<Item = (HeaderName, HeaderValue, bool)> + '_ {
    list.iter().filter_map(|o| {
        let h = o.header.as_ref()?;
        let name = HeaderName::from_bytes(h.key.as_bytes()).ok()?;
        let value = HeaderValue::from_str(&h.value).ok()?;
        #[allow(deprecated)]
        let append = o.append.is_some_and(|a| a.value);
        Some((name, value, append))
    })
}

fn decision(answer: CheckResponse) -> Decision {
    let ok = answer.status.as_ref().is_none_or(|s| s.code == 0);
    match (ok, answer.http_response) {
        (true, response) => {
            let mut allowed = Allowed::default();
            if let Some(HttpResponse::OkResponse(r)) = response {
                for (name, value, append) in options(&r.headers) {
                    if append {
                        allowed.append.push((name, value));
                    } else {
                        allowed.set.push((name, value));
                    }
                }
                allowed.remove =
                    r.headers_to_remove.iter().filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()).collect();
                allowed.response = options(&r.response_headers_to_add).map(|(n, v, _)| (n, v)).collect();
            }
            Decision::Allowed(allowed)
        }
        (false, response) => {
            let denied = match response {
                Some(HttpResponse::DeniedResponse(d)) => Some(d),
                _ => None,
            };
            let status = denied
                .as_ref()
                .and_then(|d| d.status.as_ref())
                .and_then(|s| u16::try_from(s.code).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.as_u16() >= 100)
                .unwrap_or(StatusCode::FORBIDDEN);
            let body = denied.as_ref().map(|d| d.body.clone()).unwrap_or_default();
            let mut reply =
                LocalReply::new(status, body, "ext_authz_denied").with_flag(ResponseFlag::UnauthorizedExternalService);
            if let Some(d) = &denied {
                for (name, value, append) in options(&d.headers) {
                    if append {
                        reply.headers.append(name, value);
                    } else {
                        reply.headers.insert(name, value);
                    }
                }
            }
            Decision::Denied(reply)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::grpc_service::EnvoyGrpc;

    /// ext_authz sends the cluster's name as the authority: another is refused.
    #[test]
    fn an_authority_is_refused_by_name() {
        let target = EnvoyGrpc { cluster_name: "authz".into(), authority: "a.example".into(), ..Default::default() };
        let g = GrpcServiceProto { target_specifier: Some(TargetSpecifier::EnvoyGrpc(target)), ..Default::default() };
        let e = GrpcService::from_proto(&g, &FieldPath::starting_at("grpc_service")).expect_err("refused").to_string();
        assert!(e.contains("grpc_service.envoy_grpc.authority"), "{e}");
    }
}
