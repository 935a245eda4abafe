//! Calls to a gRPC service, as Envoy's `Grpc::AsyncClient` makes them for an
//! `envoy_grpc` service: a `POST` of the method on an HTTP/2 stream of the
//! cluster's pool (`router::async_client`), each message with its 5-byte gRPC
//! prefix, `:authority` the `envoy_grpc.authority` (else the cluster's name),
//! `x-envoy-internal` and `x-forwarded-for` (the async client's), then the
//! `initial_metadata` headers. A unary call (`call`, the OpenTelemetry
//! exporters') is bounded by `grpc_service.timeout` (none: no limit) without a
//! `grpc-timeout` header, as Envoy 1.40 sent it; a client stream (`stream`,
//! the metrics service's) lasts until either side ends it. Answers are left
//! to the caller.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::GrpcService;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use prost::Message;
use tokio::sync::mpsc;

use crate::config::{duration, ConfigError, FieldPath};
use crate::http::http1::client_connection::{BodyOut, BoxError, RequestOut};
use crate::router::async_client::{self, AsyncFailure, AsyncResponse};
use crate::thread_local::Slot;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::ThreadLocalClusterManager;

/// A compiled `GrpcService` with an `envoy_grpc` target.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    /// `envoy_grpc.cluster_name`.
    pub cluster: String,
    /// `envoy_grpc.authority`, else the cluster's name.
    authority: HeaderValue,
    /// `initial_metadata`, in config order.
    metadata: Vec<(HeaderName, HeaderValue)>,
    /// `timeout`; zero or unset is no limit, as Envoy's.
    pub timeout: Option<Duration>,
}

impl GrpcClient {
    /// `path` points at the `GrpcService`; the cluster must be one
    /// `cluster_exists` knows.
    pub fn from_proto(
        g: &GrpcService,
        path: &FieldPath,
        cluster_exists: &dyn Fn(&str) -> bool,
    ) -> Result<GrpcClient, ConfigError> {
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
        Ok(GrpcClient {
            cluster: target.cluster_name.clone(),
            authority,
            metadata,
            timeout: g.timeout.as_ref().map(duration).filter(|d| !d.is_zero()),
        })
    }

    /// One more header after the `initial_metadata`, of the caller's own
    /// config (SkyWalking's `authentication` token).
    pub fn with_metadata(mut self, name: HeaderName, value: HeaderValue) -> GrpcClient {
        self.metadata.push((name, value));
        self
    }

    /// The request headers; `extra` are the caller's own (a user agent), sent
    /// after the gRPC ones and before the `initial_metadata`.
    fn headers(&self, extra: &[(HeaderName, HeaderValue)]) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(6 + extra.len() + self.metadata.len());
        map.insert(http::header::HOST, self.authority.clone());
        map.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        map.insert(http::header::TE, HeaderValue::from_static("trailers"));
        // Envoy's async client marks the call internal, from this host.
        async_client::mark_internal(&mut map);
        for (name, value) in extra.iter().chain(&self.metadata) {
            map.append(name.clone(), value.clone());
        }
        map
    }

    /// Calls `method` (`/package.Service/Method`) with `message`.
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
        let body = framed(message).ok_or(AsyncFailure::TooLarge)?;
        let map = self.headers(headers);
        let request = RequestOut { method: &Method::POST, target: method, headers: &map, overrides: &[] };
        // gRPC needs HTTP/2: the cluster's HTTP/2 pool, whatever its configured protocol.
        async_client::send(
            &cluster,
            &request,
            BodyOut::Whole(body),
            Protocol::Http2,
            self.timeout,
            async_client::MAX_COLLECTOR_ANSWER,
        )
        .await
    }

    /// Opens a client stream of `method` on the current thread (a task of its
    /// own); messages go out as they are sent to the returned handle. `None`
    /// when the thread knows no such cluster.
    pub fn stream(
        self: &Rc<Self>,
        clusters: &Slot<ThreadLocalClusterManager>,
        method: &'static str,
    ) -> Option<ClientStream> {
        let cluster = clusters.get().and_then(|cm| cm.get(&self.cluster))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.clone();
        tokio::task::spawn_local(async move {
            let map = client.headers(&[]);
            let request = RequestOut { method: &Method::POST, target: method, headers: &map, overrides: &[] };
            let body = BodyOut::Streaming(Box::pin(ChannelBody(rx)));
            let answer =
                async_client::send(&cluster, &request, body, Protocol::Http2, None, async_client::MAX_COLLECTOR_ANSWER);
            if let Err(e) = answer.await {
                tracing::debug!("gRPC stream {method} to {} ended: {e:?}", client.cluster);
            }
        });
        Some(ClientStream { tx })
    }
}

/// The sending side of a client stream; dropping it ends the stream.
#[derive(Debug)]
pub struct ClientStream {
    tx: mpsc::UnboundedSender<Bytes>,
}

impl ClientStream {
    /// False once the call ended (the service closed it, or it failed).
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Resolves once the call ended.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let tx = self.tx.clone();
        async move { tx.closed().await }
    }

    /// Queues `message`; false when the stream is gone.
    pub fn send(&self, message: &impl Message) -> bool {
        framed(message).is_some_and(|b| self.tx.send(b).is_ok())
    }
}

/// The request body of a client stream: what the handle queues.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// `message` with its gRPC prefix (uncompressed, its length); `None` past 4 GiB.
fn framed(message: &impl Message) -> Option<Bytes> {
    let len = message.encoded_len();
    let mut body = BytesMut::with_capacity(5 + len);
    body.put_u8(0);
    body.put_u32(u32::try_from(len).ok()?);
    message.encode(&mut body).ok()?;
    Some(body.freeze())
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

    fn build(g: &GrpcService) -> Result<GrpcClient, ConfigError> {
        GrpcClient::from_proto(g, &FieldPath::starting_at("grpc_service"), &|c| c == "otel")
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
