//! Request mirroring (`RouteAction.request_mirror_policies`, Envoy's shadowing):
//! a copy of a forwarded request goes to another cluster, fire and forget.
//!
//! As Envoy 1.40 (tests/compat `route_mirror`): the copy is the request as the
//! router sends it (its edits and rewrites, `x-envoy-expected-rq-timeout-ms`),
//! with `-shadow` added to the host (before a port) unless
//! `disable_shadow_host_suffix_append`, and `x-envoy-internal: true` and this
//! host's `x-forwarded-for`, which Envoy's async client adds. Its body is the
//! request's: one at hand is copied, a streamed one is teed piece by piece as
//! the request sends it (`ShadowTee`), up to the buffer limit of pieces the
//! shadow has not taken yet, past which the shadow is abandoned
//! (`retry_or_shadow_abandoned`). Its response is read and dropped: only the
//! mirror cluster's stats show it. A policy whose cluster does not exist (or
//! whose header names none) sends nothing.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;
use http::header::{HeaderName, HeaderValue};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

use super::async_client;
use crate::config::{ConfigError, FieldPath};
use crate::http::body::BodyTransform;
use crate::http::headers;
use crate::http::http1::client_connection::{BodyOut, BoxError, RequestOut};
use crate::runtime::RuntimeFraction;
use crate::stats::Counter;
use crate::upstream::conn_pool::Protocol;
use crate::upstream::{ThreadLocalCluster, ThreadLocalClusterManager};

/// The most of a shadow's response read (it is dropped).
const MAX_SHADOW_RESPONSE: usize = 1 << 20;

/// Where a policy sends its copies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MirrorCluster {
    Name(String),
    /// The cluster this request header names.
    Header(HeaderName),
}

/// A compiled `RequestMirrorPolicy`.
#[derive(Debug, Clone)]
pub struct MirrorPolicy {
    cluster: MirrorCluster,
    runtime_fraction: Option<RuntimeFraction>,
    host_suffix: bool,
}

impl MirrorPolicy {
    /// `path` points at the policy.
    pub fn from_proto(p: &RequestMirrorPolicy, path: &FieldPath) -> Result<MirrorPolicy, ConfigError> {
        let cluster = match (p.cluster.is_empty(), p.cluster_header.is_empty()) {
            (false, true) => MirrorCluster::Name(p.cluster.clone()),
            (true, false) => MirrorCluster::Header(
                HeaderName::from_bytes(p.cluster_header.to_ascii_lowercase().as_bytes())
                    .map_err(|_| path.field_error("cluster_header", "not a header name"))?,
            ),
            _ => return Err(path.error("exactly one of cluster and cluster_header must be set")),
        };
        Ok(MirrorPolicy {
            cluster,
            runtime_fraction: p.runtime_fraction.as_ref().map(RuntimeFraction::from_proto),
            host_suffix: !p.disable_shadow_host_suffix_append,
        })
    }
}

/// A copy about to be sent: where, and its headers.
pub struct Shadow {
    cluster: Rc<ThreadLocalCluster>,
    parts: http::request::Parts,
}

/// The shadows `policies` ask of a request about to be sent as `parts` (with
/// the route `timeout`): those sampled whose cluster exists.
pub fn shadows(
    policies: &[MirrorPolicy],
    clusters: Option<&ThreadLocalClusterManager>,
    parts: &http::request::Parts,
    timeout: Option<Duration>,
) -> Vec<Shadow> {
    let Some(clusters) = clusters else { return Vec::new() };
    policies
        .iter()
        .filter(|p| p.runtime_fraction.as_ref().is_none_or(RuntimeFraction::enabled))
        .filter_map(|p| {
            let name = match &p.cluster {
                MirrorCluster::Name(n) => n.as_str(),
                MirrorCluster::Header(h) => parts.headers.get(h)?.to_str().ok().filter(|n| !n.is_empty())?,
            };
            let cluster = clusters.get(name)?;
            let mut copy = http::Request::new(()).into_parts().0;
            copy.method = parts.method.clone();
            copy.uri = parts.uri.clone();
            copy.headers = parts.headers.clone();
            if p.host_suffix {
                let host = copy.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(shadow_host);
                if let Some(Ok(v)) = host.map(|h| HeaderValue::from_str(&h)) {
                    copy.headers.insert(http::header::HOST, v);
                }
            }
            if let Some(t) = timeout {
                copy.headers
                    .insert(headers::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, headers::number_value(t.as_millis() as u64));
            }
            async_client::mark_internal(&mut copy.headers);
            Some(Shadow { cluster, parts: copy })
        })
        .collect()
}

/// `host-shadow`, the suffix before a port (`host-shadow:8080`).
fn shadow_host(host: &str) -> String {
    match host.rsplit_once(':') {
        // Not the colons of a bracketless IPv6 address.
        Some((name, port))
            if (!name.contains(':') || name.ends_with(']')) && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    }
}

impl Shadow {
    /// Sends the copy with `body`, on this worker, forgetting it.
    pub fn send(self, body: BodyOut, timeout: Option<Duration>) {
        tokio::task::spawn_local(async move {
            let Shadow { cluster, parts } = self;
            let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let request = RequestOut { method: &parts.method, target, headers: &parts.headers, overrides: &[] };
            let protocol = Protocol::from(cluster.info.protocol_for(http::Version::HTTP_11));
            let _ = async_client::send(&cluster, &request, body, protocol, timeout, MAX_SHADOW_RESPONSE).await;
        });
    }
}

/// Copies each piece of a streamed request body to a shadow's body as the
/// request sends it. The pieces the shadow has not taken yet are bounded by
/// `limit`: past it, the shadow is abandoned (its body fails) and counted.
pub struct ShadowTee {
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    pending: Rc<Cell<usize>>,
    limit: usize,
    abandoned: std::sync::Arc<Counter>,
}

/// The shadow's side of a `ShadowTee`: the pieces it copied, and a clean end
/// only once the request's end reached it (else the shadow fails).
struct ShadowBody {
    rx: mpsc::UnboundedReceiver<Bytes>,
    pending: Rc<Cell<usize>>,
    ended: bool,
}

/// A tee for one shadow: the transform the request body carries, and the shadow's body.
pub fn tee(limit: usize, abandoned: std::sync::Arc<Counter>) -> (ShadowTee, BodyOut) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Rc::new(Cell::new(0));
    let body = ShadowBody { rx, pending: pending.clone(), ended: false };
    (ShadowTee { tx: Some(tx), pending, limit, abandoned }, BodyOut::Streaming(Box::pin(body)))
}

impl BodyTransform for ShadowTee {
    fn data(&mut self, data: Bytes, end: bool) -> Bytes {
        if let Some(tx) = &self.tx {
            let pending = self.pending.get() + data.len();
            if pending > self.limit {
                self.abandoned.inc();
                self.tx = None;
            } else if !data.is_empty() && tx.send(data.clone()).is_ok() {
                self.pending.set(pending);
            }
        }
        if end {
            if let Some(tx) = self.tx.take() {
                // An empty piece marks the end the shadow may trust.
                let _ = tx.send(Bytes::new());
            }
        }
        data
    }
}

impl Body for ShadowBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(piece) if piece.is_empty() => self.ended = true,
                Some(piece) => {
                    let pending = self.pending.get().saturating_sub(piece.len());
                    self.pending.set(pending);
                    return Poll::Ready(Some(Ok(Frame::data(piece))));
                }
                // The tee was dropped or gave up before the request ended.
                None => return Poll::Ready(Some(Err("shadow abandoned".into()))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_goes_before_a_port() {
        assert_eq!(shadow_host("example.com"), "example.com-shadow");
        assert_eq!(shadow_host("example.com:8080"), "example.com-shadow:8080");
        assert_eq!(shadow_host("10.0.0.1:80"), "10.0.0.1-shadow:80");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }
}
