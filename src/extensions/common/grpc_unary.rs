//! A unary gRPC call to a collector's cluster, as Envoy's `Grpc::AsyncClient`
//! makes it for an `envoy_grpc` service: one `POST` of the method on an HTTP/2
//! stream of the cluster's pool (`router::async_client`), the message with its
//! 5-byte gRPC prefix, `:authority` the `envoy_grpc.authority` (else the
//! cluster's name), `x-envoy-internal` and `x-forwarded-for` (the async
//! client's), the `initial_metadata` headers, and `grpc_service.timeout` (none:
//! no limit) bounding the call without a `grpc-timeout` header, as Envoy 1.40
//! sent it. The OpenTelemetry tracer and stat sink
//! both export through it; the answer is read and left to the caller.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::GrpcService;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use prost::Message;

use crate::config::{duration, ConfigError, FieldPath};
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::router::async_client::{self, AsyncFailure, AsyncResponse};
use crate::thread_local::Slot;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::ThreadLocalClusterManager;

/// A compiled `GrpcService` with an `envoy_grpc` target.
#[derive(Debug)]
pub struct GrpcUnary {
    /// `envoy_grpc.cluster_name`.
    pub cluster: String,
    /// `envoy_grpc.authority`, else the cluster's name.
    authority: HeaderValue,
    /// `initial_metadata`, in config order.
    metadata: Vec<(HeaderName, HeaderValue)>,
    /// `timeout`; zero or unset is no limit, as Envoy's.
    pub timeout: Option<Duration>,
}

impl GrpcUnary {
    /// `path` points at the `GrpcService`; the cluster must be one
    /// `cluster_exists` knows.
    pub fn from_proto(
        g: &GrpcService,
        path: &FieldPath,
        cluster_exists: &dyn Fn(&str) -> bool,
    ) -> Result<GrpcUnary, ConfigError> {
        let Some(TargetSpecifier::EnvoyGrpc(target)) = &g.target_specifier else {
            return Err(path.field_error("google_grpc", "only envoy_grpc is supported by Courier"));
        };
        let ep = path.child("envoy_grpc");
        if target.cluster_name.is_empty() {
            return Err(ep.field_error("cluster_name", "value length must be at least 1 characters"));
        }
        if !cluster_exists(&target.cluster_name) {
            return Err(ep.field_error("cluster_name", format!("unknown cluster '{}'", target.cluster_name)));
        }
        let authority = if target.authority.is_empty() { &target.cluster_name } else { &target.authority };
        let authority = HeaderValue::from_str(authority)
            .map_err(|_| ep.field_error("authority", format!("'{authority}' is not a valid authority")))?;
        let mut metadata = Vec::with_capacity(g.initial_metadata.len());
        for (i, h) in g.initial_metadata.iter().enumerate() {
            let field = |f: &str| format!("initial_metadata[{i}].{f}");
            let name = HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|_| path.field_error(&field("key"), format!("'{}' is not a header name", h.key)))?;
            let value = HeaderValue::from_str(&h.value)
                .map_err(|_| path.field_error(&field("value"), "not a valid header value"))?;
            metadata.push((name, value));
        }
        Ok(GrpcUnary {
            cluster: target.cluster_name.clone(),
            authority,
            metadata,
            timeout: g.timeout.as_ref().map(duration).filter(|d| !d.is_zero()),
        })
    }

    /// Calls `method` (`/package.Service/Method`) with `message`; `headers` are
    /// the caller's own (a user agent), sent after the gRPC ones and before the
    /// `initial_metadata`.
    pub async fn call(
        &self,
        clusters: &Slot<ThreadLocalClusterManager>,
        method: &str,
        message: &impl Message,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<AsyncResponse, AsyncFailure> {
        let Some(cluster) = clusters.get().and_then(|cm| cm.get(&self.cluster)) else {
            return Err(AsyncFailure::NoHealthyHost);
        };
        let len = message.encoded_len();
        let mut body = BytesMut::with_capacity(5 + len);
        body.put_u8(0);
        body.put_u32(u32::try_from(len).map_err(|_| AsyncFailure::TooLarge)?);
        message.encode(&mut body).map_err(|_| AsyncFailure::TooLarge)?;
        let mut map = HeaderMap::with_capacity(4 + headers.len() + self.metadata.len());
        map.insert(http::header::HOST, self.authority.clone());
        map.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        map.insert(http::header::TE, HeaderValue::from_static("trailers"));
        // Envoy's async client marks the call internal, from this host.
        async_client::mark_internal(&mut map);
        for (name, value) in headers.iter().chain(&self.metadata) {
            map.append(name.clone(), value.clone());
        }
        let request = RequestOut { method: &Method::POST, target: method, headers: &map, overrides: &[] };
        // gRPC needs HTTP/2: the cluster's HTTP/2 pool, whatever its configured protocol.
        async_client::send(
            &cluster,
            &request,
            BodyOut::Whole(body.freeze()),
            Protocol::Http2,
            self.timeout,
            async_client::MAX_COLLECTOR_ANSWER,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::grpc_service::EnvoyGrpc;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue as HeaderValueProto;

    fn service(authority: &str, metadata: &[(&str, &str)]) -> GrpcService {
        GrpcService {
            target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                cluster_name: "otel".into(),
                authority: authority.into(),
                ..Default::default()
            })),
            initial_metadata: metadata
                .iter()
                .map(|(k, v)| HeaderValueProto { key: (*k).into(), value: (*v).into(), ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    fn build(g: &GrpcService) -> Result<GrpcUnary, ConfigError> {
        GrpcUnary::from_proto(g, &FieldPath::starting_at("grpc_service"), &|c| c == "otel")
    }

    /// The authority is the cluster's name unless `authority` is set; metadata
    /// keys are lower-cased, as HTTP/2 sends them; no timeout is no limit.
    #[test]
    fn authority_metadata_and_timeout() {
        let plain = build(&service("", &[])).expect("valid");
        assert_eq!((plain.authority.to_str().ok(), plain.timeout), (Some("otel"), None));
        let set = build(&service("collector.example", &[("Authorization", "Bearer x")])).expect("valid");
        assert_eq!(set.authority, "collector.example");
        assert_eq!(set.metadata, [(HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer x"))]);
        let e = build(&service("", &[("bad key", "v")])).expect_err("refused").to_string();
        assert!(e.contains("grpc_service.initial_metadata[0].key"), "{e}");
        let mut unknown = service("", &[]);
        if let Some(TargetSpecifier::EnvoyGrpc(t)) = &mut unknown.target_specifier {
            t.cluster_name = "nowhere".into();
        }
        let e = build(&unknown).expect_err("refused").to_string();
        assert!(e.contains("grpc_service.envoy_grpc.cluster_name") && e.contains("nowhere"), "{e}");
    }
}
