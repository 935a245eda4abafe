//! Requests the proxy makes on its own behalf (Envoy's `Http::AsyncClient`):
//! tracers exporting spans, `ext_authz` asking its authorization service. One
//! request to a host the cluster's load balancer picks, on the worker's pool of
//! the protocol asked for, counted as the cluster's active request while it
//! lasts; its response read whole, up to a bound. No retries, no filters, no
//! access log: what to make of the answer is the caller's.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;

use super::upstream_request::ActiveRequest;
use crate::http::http1::client_connection::{BodyOut, RequestOut};
use crate::upstream::conn_pool::{ConnPool, Protocol};
use crate::upstream::http2_conn_pool::{self, Http2ResponseBody};
use crate::upstream::original_dst::LbContext;
use crate::upstream::ThreadLocalCluster;

/// The most of a collector's answer a tracer reads (it is not looked at).
pub const MAX_COLLECTOR_ANSWER: usize = 64 * 1024;

/// Marks `headers` as Envoy's async client marks a gRPC call or a shadow: an
/// internal request, from this host (`x-forwarded-for`).
pub fn mark_internal(headers: &mut HeaderMap) {
    headers.insert(crate::http::headers::X_ENVOY_INTERNAL, http::HeaderValue::from_static("true"));
    if let Ok(v) = http::HeaderValue::from_str(&crate::http::headers::local_address().to_string()) {
        headers.insert(crate::http::headers::X_FORWARDED_FOR, v);
    }
}

/// A whole response.
#[derive(Debug)]
pub struct AsyncResponse {
    pub parts: http::response::Parts,
    pub body: Bytes,
    /// The response's trailers (a gRPC status), if it had any.
    pub trailers: Option<HeaderMap>,
}

/// Why no response came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncFailure {
    /// The cluster has no host to send to.
    NoHealthyHost,
    /// No connection, a reset, or a malformed response.
    Upstream,
    /// The response body was over the bound.
    TooLarge,
    /// No whole response within the timeout.
    Timeout,
}

/// POSTs `body` whole to `target` on `cluster`, in the cluster's own protocol
/// as Envoy's async client uses it, and reads at most `MAX_COLLECTOR_ANSWER` of
/// the answer: what a tracer's reporter sends its collector.
pub async fn post_to_collector(
    cluster: &Rc<ThreadLocalCluster>,
    target: &str,
    headers: &HeaderMap,
    body: impl Into<Bytes>,
    timeout: Duration,
) -> Result<AsyncResponse, AsyncFailure> {
    let request = RequestOut { method: &http::Method::POST, target, headers, overrides: &[] };
    let protocol = Protocol::from(cluster.info.protocol_for(http::Version::HTTP_11));
    send(cluster, &request, BodyOut::Whole(body.into()), protocol, Some(timeout), MAX_COLLECTOR_ANSWER).await
}

/// Sends `request` with `body` (whole, or streamed: a shadow's) to `cluster` over `protocol` and reads the
/// response whole (at most `max_body` bytes of body), within `timeout`. The
/// response's status is counted on the cluster, as Envoy counts its async
/// client's requests.
pub async fn send(
    cluster: &Rc<ThreadLocalCluster>,
    request: &RequestOut<'_>,
    body: BodyOut,
    protocol: Protocol,
    timeout: Option<Duration>,
    max_body: usize,
) -> Result<AsyncResponse, AsyncFailure> {
    let Some(host) = cluster.choose_host(&LbContext::default()) else { return Err(AsyncFailure::NoHealthyHost) };
    let active = |breaker| {
        let gauge = cluster.info.stats.upstream_rq_active.clone();
        ActiveRequest::new(tokio::time::Instant::now(), breaker, gauge, host.clone())
    };
    let exchange = async {
        match cluster.http_pool(&host, protocol, Default::default()) {
            ConnPool::Http1(pool) => {
                let (mut client, breaker) = pool.acquire().await.map_err(|_| AsyncFailure::Upstream)?;
                let _active = active(breaker);
                let head = client.send(request, body).await.map_err(|_| AsyncFailure::Upstream)?;
                // Read to its end, so the connection goes back to the pool.
                let response = client.into_response_body(&head);
                let (body, trailers) = read_whole(response, max_body).await?;
                Ok(AsyncResponse { parts: head.parts, body, trailers })
            }
            ConnPool::Http2(pool) => {
                let (mut stream, breaker) = pool.acquire().await.map_err(|_| AsyncFailure::Upstream)?;
                let _active = active(breaker);
                let headers = http2_conn_pool::request_headers(request, host.address);
                let empty = matches!(&body, BodyOut::Whole(b) if b.is_empty());
                let (response, tx) = stream.send_request(headers, empty).ok_or(AsyncFailure::Upstream)?;
                http2_conn_pool::upload(tx, body).await.map_err(|_| AsyncFailure::Upstream)?;
                let (parts, recv) = response.await.map_err(|_| AsyncFailure::Upstream)?.into_parts();
                let (body, trailers) = read_whole(Http2ResponseBody::new(recv, None, stream), max_body).await?;
                Ok(AsyncResponse { parts, body, trailers })
            }
        }
    };
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, exchange).await.unwrap_or(Err(AsyncFailure::Timeout)),
        None => exchange.await,
    };
    if let Ok(r) = &result {
        cluster.count_response_code(r.parts.status.as_u16());
    }
    result
}

async fn read_whole<B>(mut body: B, max: usize) -> Result<(Bytes, Option<HeaderMap>), AsyncFailure>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut data = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| AsyncFailure::Upstream)?;
        match frame.into_data() {
            Ok(d) => {
                if data.len() + d.len() > max {
                    return Err(AsyncFailure::TooLarge);
                }
                data.extend_from_slice(&d);
            }
            Err(frame) => return Ok((data.freeze(), frame.into_trailers().ok())),
        }
    }
    Ok((data.freeze(), None))
}
