//! Forwarding one request to a cluster (the heart of Envoy's router filter):
//! host selection, the per-host connection pool, circuit breakers, the route's
//! timeout and per-try timeout, and retries with Envoy's exponential back-off.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::config::{ForwardAction, RetryOn, RetryPolicy};
use crate::http::body::RequestBodyStream;
use crate::http::filter::LocalReply;
use crate::http::stream_info::{ResponseFlag, StreamInfo};
use crate::stats::Gauge;
use crate::upstream::host::Host;
use crate::upstream::http1_conn_pool::{BoxError, PoolFailure, PooledClient, UpstreamBody};
use crate::upstream::resource_manager::{Resource, ResourceGuard};
use crate::upstream::ThreadLocalCluster;

/// The request body as the router can send it: replayable for retries when it
/// is empty or was read whole, else streamed once.
pub enum ForwardBody {
    Empty,
    Buffered(Bytes),
    Streaming(RequestBodyStream),
    /// A body already partly read (see `retry_body`), sent once.
    Once(UpstreamBody),
}

impl ForwardBody {
    fn replayable(&self) -> bool {
        matches!(self, ForwardBody::Empty | ForwardBody::Buffered(_))
    }

    /// A body for one attempt; a streamed body can be taken once only.
    fn take_for_attempt(&mut self) -> UpstreamBody {
        match self {
            ForwardBody::Empty => Box::pin(Empty::<Bytes>::new().map_err(|never| match never {})),
            ForwardBody::Buffered(b) => Box::pin(Full::new(b.clone()).map_err(|never| match never {})),
            ForwardBody::Streaming(_) | ForwardBody::Once(_) => match std::mem::replace(self, ForwardBody::Empty) {
                ForwardBody::Streaming(body) => Box::pin(body.map_err(|e| Box::new(e) as BoxError)),
                ForwardBody::Once(body) => body,
                _ => Box::pin(Empty::<Bytes>::new().map_err(|never| match never {})),
            },
        }
    }
}

/// A response from upstream with what must live as long as its body.
pub struct UpstreamResponse {
    pub response: Response<Incoming>,
    pub client: PooledClient,
    pub host: Arc<Host>,
    /// From sending the request to receiving the response headers.
    pub service_time: Duration,
    /// `upstream_rq_active` and the `max_requests` breaker, held until the end.
    pub active: ActiveRequest,
}

/// Keeps a request counted as active on its cluster and host until dropped.
pub struct ActiveRequest {
    /// When this attempt started (Envoy's `upstream_rq_time` runs from here to
    /// the end of the response).
    pub started: Instant,
    _breaker: ResourceGuard,
    gauge: Arc<Gauge>,
    host: Arc<Host>,
}

impl ActiveRequest {
    fn new(breaker: ResourceGuard, gauge: Arc<Gauge>, host: Arc<Host>) -> ActiveRequest {
        gauge.inc();
        host.stats.rq_active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest { started: Instant::now(), _breaker: breaker, gauge, host }
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.gauge.dec();
        self.host.stats.rq_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How one attempt failed before a response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptFailure {
    Pool(PoolFailure),
    PerTryTimeout,
    GlobalTimeout,
    /// The upstream closed or reset the connection before the response headers.
    Reset,
    /// The downstream request body was malformed (e.g. a bad chunk size) while it
    /// was being sent: the downstream's fault, never retried.
    DownstreamBody,
}

/// Envoy's local reply bodies for upstream failures.
fn failure_reply(f: AttemptFailure) -> LocalReply {
    match f {
        AttemptFailure::Pool(PoolFailure::Overflow) => LocalReply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            "upstream_reset_before_response_started{overflow}",
        )
        .with_flag(ResponseFlag::UpstreamOverflow),
        AttemptFailure::Pool(PoolFailure::ConnectFailure) => LocalReply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
            "upstream_reset_before_response_started{remote_connection_failure}",
        )
        .with_flag(ResponseFlag::UpstreamConnectionFailure),
        AttemptFailure::Pool(PoolFailure::ConnectTimeout) => LocalReply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
            "upstream_reset_before_response_started{connection_timeout}",
        )
        .with_flag(ResponseFlag::UpstreamConnectionFailure),
        AttemptFailure::PerTryTimeout | AttemptFailure::GlobalTimeout => {
            LocalReply::new(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout", "upstream_response_timeout")
                .with_flag(ResponseFlag::UpstreamRequestTimeout)
        }
        AttemptFailure::DownstreamBody => LocalReply::new(StatusCode::BAD_REQUEST, "Bad Request", "http1.codec_error")
            .with_flag(ResponseFlag::DownstreamProtocolError),
        AttemptFailure::Reset => LocalReply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            "upstream_reset_before_response_started{connection_termination}",
        )
        .with_flag(ResponseFlag::UpstreamConnectionTermination),
    }
}

/// Whether `policy` retries after `f`, as Envoy's `wouldRetryFromReset`: every
/// failure but an overflow is a reset (a per-try timeout is a local reset), retried
/// by `reset`, `5xx` and `gateway-error`; a connection failure also by
/// `connect-failure` and, since nothing was sent, `reset-before-request`.
fn retries_failure(policy: &RetryPolicy, f: AttemptFailure) -> bool {
    let on = policy.retry_on;
    let any_reset = RetryOn::RESET | RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR;
    match f {
        AttemptFailure::Pool(PoolFailure::Overflow)
        | AttemptFailure::GlobalTimeout
        | AttemptFailure::DownstreamBody => false,
        AttemptFailure::Pool(_) => on.intersects(any_reset | RetryOn::CONNECT_FAILURE | RetryOn::RESET_BEFORE_REQUEST),
        AttemptFailure::Reset | AttemptFailure::PerTryTimeout => on.intersects(any_reset),
    }
}

/// Envoy's back-off: a random wait in [0, base·2ⁿ), capped at `max_interval`.
fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let base = policy.base_interval.as_millis().max(1) as u64;
    let ceiling = base.saturating_mul(1u64 << retry.min(16)).min(policy.max_interval.as_millis().max(1) as u64);
    Duration::from_millis(crate::common::random::below(ceiling.max(1)))
}

/// Sends the request to `cluster` with the action's timeouts and retry policy.
/// `parts.uri` must be origin-form (path and query) and `host` the `Host` to send.
pub async fn forward(
    cluster: &Rc<ThreadLocalCluster>,
    action: &ForwardAction,
    parts: &http::request::Parts,
    mut body: ForwardBody,
    info: &mut StreamInfo,
) -> Result<UpstreamResponse, LocalReply> {
    let stats = &cluster.info.stats;
    let policy = action.retry_policy.as_ref();
    // With retries possible, keep the body so a retry can send it again (Envoy
    // buffers it up to its buffer limit). The route timeout starts after it.
    if policy.is_some_and(|p| p.num_retries > 0 && !p.retry_on.is_empty()) {
        body = super::retry_body::buffer_for_retries(body, super::retry_body::RETRY_BUFFER_LIMIT).await;
    }
    let deadline = action.timeout.map(|t| Instant::now() + t);
    let mut retries_done = 0u32;
    let mut retry_guard: Option<ResourceGuard> = None;
    // Only a body that is empty or was read whole can be sent again.
    let replayable = body.replayable();
    loop {
        info.attempt_count += 1;
        let Some(host) = cluster.choose_host() else {
            stats.upstream_cx_none_healthy.inc();
            return Err(LocalReply::new(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream", "no_healthy_upstream")
                .with_flag(ResponseFlag::NoHealthyUpstream));
        };
        info.upstream_host = Some(host.address);
        let Some(breaker) = cluster.info.resources.try_acquire(Resource::Requests) else {
            stats.upstream_rq_pending_overflow.inc();
            return Err(failure_reply(AttemptFailure::Pool(PoolFailure::Overflow)));
        };
        stats.upstream_rq_total.inc();
        host.stats.rq_total.fetch_add(1, Ordering::Relaxed);
        let active = ActiveRequest::new(breaker, stats.upstream_rq_active.clone(), host.clone());
        let per_try = policy.and_then(|p| p.per_try_timeout);
        let try_deadline = match (deadline, per_try) {
            (Some(d), Some(p)) => Some(d.min(Instant::now() + p)),
            (Some(d), None) => Some(d),
            (None, Some(p)) => Some(Instant::now() + p),
            (None, None) => None,
        };
        let attempt = attempt(cluster, &host, parts, &mut body, replayable, action.auto_host_rewrite);
        let outcome = match try_deadline {
            Some(at) => match tokio::time::timeout_at(at, attempt).await {
                Ok(r) => r,
                Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => Err(AttemptFailure::GlobalTimeout),
                Err(_) => Err(AttemptFailure::PerTryTimeout),
            },
            None => attempt.await,
        };
        match outcome {
            Ok((response, client, service_time)) => {
                let status = response.status().as_u16();
                let retriable = policy.is_some_and(|p| p.retriable_response(status, response.headers()));
                if retriable && replayable {
                    if let Some(guard) = next_retry(cluster, policy, retries_done) {
                        // Counted as Envoy does every upstream response, then dropped:
                        // on HTTP/1.1 its connection is not reused.
                        cluster.count_response_code(status);
                        drop((response, client));
                        retry_guard = Some(guard);
                        retries_done += 1;
                        tokio::time::sleep(backoff(policy.expect("retriable implies a policy"), retries_done)).await;
                        continue;
                    }
                    info.response_flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
                }
                if retries_done > 0 && !retriable {
                    stats.upstream_rq_retry_success.inc();
                }
                drop(retry_guard);
                host.stats.rq_success.fetch_add(u64::from(status < 500), Ordering::Relaxed);
                host.stats.rq_error.fetch_add(u64::from(status >= 500), Ordering::Relaxed);
                return Ok(UpstreamResponse { response, client, host, service_time, active });
            }
            Err(failure) => {
                drop(active);
                host.stats.rq_error.fetch_add(1, Ordering::Relaxed);
                match failure {
                    AttemptFailure::PerTryTimeout => {
                        stats.upstream_rq_per_try_timeout.inc();
                        host.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
                    }
                    AttemptFailure::GlobalTimeout => {
                        stats.upstream_rq_timeout.inc();
                        host.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
                    }
                    AttemptFailure::Reset => stats.upstream_rq_rx_reset.inc(),
                    AttemptFailure::Pool(_) | AttemptFailure::DownstreamBody => {}
                }
                if let Some(p) = policy.filter(|p| retries_failure(p, failure) && replayable) {
                    if let Some(guard) = next_retry(cluster, Some(p), retries_done) {
                        retry_guard = Some(guard);
                        retries_done += 1;
                        tokio::time::sleep(backoff(p, retries_done)).await;
                        continue;
                    }
                }
                if matches!(failure, AttemptFailure::PerTryTimeout) && deadline.is_some() {
                    stats.upstream_rq_timeout.inc();
                }
                if policy.is_some_and(|p| retries_failure(p, failure)) && retries_done > 0 {
                    info.response_flags.set(ResponseFlag::UpstreamRetryLimitExceeded);
                }
                return Err(failure_reply(failure));
            }
        }
    }
}

/// Takes a retry if the policy has one left and the retry breaker allows it.
fn next_retry(cluster: &ThreadLocalCluster, policy: Option<&RetryPolicy>, done: u32) -> Option<ResourceGuard> {
    let policy = policy?;
    let stats = &cluster.info.stats;
    if done >= policy.num_retries {
        stats.upstream_rq_retry_limit_exceeded.inc();
        return None;
    }
    match cluster.info.resources.try_acquire(Resource::Retries) {
        Some(g) => {
            stats.upstream_rq_retry.inc();
            stats.upstream_rq_retry_backoff_exponential.inc();
            Some(g)
        }
        None => {
            stats.upstream_rq_retry_overflow.inc();
            None
        }
    }
}

/// One try: a pooled client, then the request. A request that fails on a reused
/// keep-alive connection before any response is sent again on another
/// connection once (the upstream closed it while idle), if the body allows.
async fn attempt(
    cluster: &Rc<ThreadLocalCluster>,
    host: &Arc<Host>,
    parts: &http::request::Parts,
    body: &mut ForwardBody,
    replayable: bool,
    auto_host_rewrite: bool,
) -> Result<(Response<Incoming>, PooledClient, Duration), AttemptFailure> {
    let pool = cluster.http_pool(host);
    let mut stale_retry = replayable;
    loop {
        let mut client = pool.acquire().await.map_err(AttemptFailure::Pool)?;
        client.on_request();
        let mut request = build_request(parts, body.take_for_attempt());
        if auto_host_rewrite && !host.hostname.is_empty() {
            if let Ok(v) = http::HeaderValue::from_str(&host.hostname) {
                request.headers_mut().insert(http::header::HOST, v);
            }
        }
        let sent = Instant::now();
        match client.sender.send_request(request).await {
            Ok(response) => return Ok((response, client, sent.elapsed())),
            Err(e) => {
                tracing::debug!(host = %host.address, "upstream request failed: {e}");
                if e.is_user() {
                    return Err(AttemptFailure::DownstreamBody);
                }
                if client.reused && stale_retry && (e.is_canceled() || e.is_incomplete_message()) {
                    stale_retry = false;
                    continue;
                }
                return Err(AttemptFailure::Reset);
            }
        }
    }
}

fn build_request(parts: &http::request::Parts, body: UpstreamBody) -> Request<UpstreamBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = http::Version::HTTP_11;
    *req.headers_mut() = parts.headers.clone();
    req
}
