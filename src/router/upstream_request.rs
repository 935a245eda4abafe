//! Forwarding one request to a cluster (the heart of Envoy's router filter):
//! host selection, the per-host connection pool, circuit breakers, the route's
//! timeout and per-try timeout, and retries with Envoy's exponential back-off.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::config::{ForwardAction, RetryOn, RetryPolicy};
use super::retry_body::Recording;
use crate::http::body::RequestBodyStream;
use crate::http::headers::{
    self, X_ENVOY_ATTEMPT_COUNT, X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, X_ENVOY_IMMEDIATE_HEALTH_CHECK_FAIL,
};
use crate::http::http1::client_connection::{BodyOut, BoxError, RequestFailure, RequestOut, UpstreamBody};
use crate::http::http1::CodecError;
use crate::http::local_reply::LocalReply;
use crate::runtime;
use crate::stats::Gauge;
use crate::stream_info::{ResponseFlag, StreamInfo};
use crate::upstream::cluster::UpstreamProtocol;
use crate::upstream::conn_pool::{ConnPool, UpstreamResponseBody};
use crate::upstream::host::Host;
use crate::upstream::http1_conn_pool::PoolFailure;
use crate::upstream::http2_conn_pool::{self, Http2ConnPool, Http2ResponseBody, UploadFailure};
use crate::upstream::mixed_conn_pool;
use crate::upstream::original_dst::LbContext;
use crate::upstream::resource_manager::{Resource, ResourceGuard};

/// Envoy's header on a local reply for a circuit breaker overflow.
const X_ENVOY_OVERLOADED: http::HeaderName = http::HeaderName::from_static("x-envoy-overloaded");

use crate::upstream::ThreadLocalCluster;

/// The request body as the router can send it: replayable for retries when it
/// is empty or was read whole, else streamed once.
///
/// The request's headers decide the framing upstream: with
/// `transfer-encoding: chunked` (kept from a chunked downstream request) even an
/// empty body goes as `0\r\n\r\n`, as Envoy keeps the framing.
pub enum ForwardBody {
    Empty,
    Buffered(Bytes),
    Streaming(RequestBodyStream),
    /// Streamed and recorded for retries as it goes (see `retry_body`).
    Recorded(Recording),
    /// A body with trailers that a filter read whole, sent once.
    Once(UpstreamBody),
    /// A `Streaming` or `Once` body an earlier try took: none is left to send.
    Taken,
}

impl ForwardBody {
    /// Whether another try can send the body whole.
    fn replayable(&self) -> bool {
        match self {
            ForwardBody::Empty | ForwardBody::Buffered(_) => true,
            ForwardBody::Recorded(r) => r.replayable(),
            ForwardBody::Streaming(_) | ForwardBody::Once(_) | ForwardBody::Taken => false,
        }
    }

    /// An HTTP/2 request whose body is known to be empty ends with its headers.
    fn ends_with_headers(&self) -> bool {
        use hyper::body::Body as _;
        match self {
            ForwardBody::Empty | ForwardBody::Taken => true,
            ForwardBody::Buffered(b) => b.is_empty(),
            ForwardBody::Streaming(b) => b.is_end_stream(),
            ForwardBody::Recorded(r) => r.is_empty(),
            ForwardBody::Once(b) => b.is_end_stream(),
        }
    }

    /// A body for one attempt; a streamed body can be taken once only.
    fn take_for_attempt(&mut self) -> BodyOut {
        match std::mem::replace(self, ForwardBody::Taken) {
            ForwardBody::Empty => {
                *self = ForwardBody::Empty;
                BodyOut::Whole(Bytes::new())
            }
            ForwardBody::Taken => BodyOut::Whole(Bytes::new()),
            ForwardBody::Buffered(b) => {
                *self = ForwardBody::Buffered(b.clone());
                BodyOut::Whole(b)
            }
            ForwardBody::Streaming(body) => BodyOut::Streaming(Box::pin(body.map_err(|e| Box::new(e) as BoxError))),
            ForwardBody::Recorded(recording) => {
                let reader = recording.reader();
                *self = ForwardBody::Recorded(recording);
                BodyOut::Streaming(Box::pin(reader.map_err(|e| Box::new(e) as BoxError)))
            }
            ForwardBody::Once(body) => BodyOut::Streaming(body),
        }
    }
}

/// A response from upstream with what must live as long as its body.
pub struct UpstreamResponse {
    pub head: http::response::Parts,
    /// Owns the connection until the body was read whole.
    pub body: UpstreamResponseBody,
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
    /// `breaker` is the request's `max_requests` slot, taken by the pool when it
    /// attached the request to a connection.
    pub fn new(started: Instant, breaker: ResourceGuard, gauge: Arc<Gauge>, host: Arc<Host>) -> ActiveRequest {
        gauge.inc();
        host.stats.rq_active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest { started, _breaker: breaker, gauge, host }
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
    /// The upstream reset the HTTP/2 stream before the response headers.
    RemoteReset,
    /// The upstream refused the HTTP/2 stream (REFUSED_STREAM), again after the
    /// one transparent resend.
    RefusedStream,
    /// The response head was not valid HTTP/1.1.
    Protocol,
    /// The downstream request body was malformed (e.g. a bad chunk size) while it
    /// was being sent: the downstream's fault, never retried. Envoy's reply is
    /// the codec's.
    DownstreamBody(CodecError),
}

/// Envoy's reply for an upstream that closed before the response was passed on
/// (also when the encoder filters were still reading its body whole: nothing was
/// sent yet).
pub fn reset_before_response_reply() -> LocalReply {
    failure_reply(AttemptFailure::Reset, false)
}

/// Envoy's local reply for an upstream failure. A reset reason's body says
/// `retried and the latest reset reason` once the request was retried; an
/// overflow carries `x-envoy-overloaded: true`.
fn failure_reply(f: AttemptFailure, retried: bool) -> LocalReply {
    let reset_with = |status: StatusCode, reason: &str, details: &'static str, flag: ResponseFlag| {
        let latest = if retried { "retried and the latest " } else { "" };
        LocalReply::new(
            status,
            format!("upstream connect error or disconnect/reset before headers. {latest}reset reason: {reason}"),
            details,
        )
        .with_flag(flag)
    };
    let reset = |reason: &str, details: &'static str, flag: ResponseFlag| {
        reset_with(StatusCode::SERVICE_UNAVAILABLE, reason, details, flag)
    };
    match f {
        AttemptFailure::Pool(p) if p.is_overflow() => {
            let mut reply =
                reset("overflow", "upstream_reset_before_response_started{overflow}", ResponseFlag::UpstreamOverflow);
            reply.headers.insert(X_ENVOY_OVERLOADED, http::HeaderValue::from_static("true"));
            reply
        }
        AttemptFailure::Pool(PoolFailure::ConnectTimeout) => reset(
            "connection timeout",
            "upstream_reset_before_response_started{connection_timeout}",
            ResponseFlag::UpstreamConnectionFailure,
        ),
        AttemptFailure::Pool(_) => reset(
            "remote connection failure",
            "upstream_reset_before_response_started{remote_connection_failure}",
            ResponseFlag::UpstreamConnectionFailure,
        ),
        AttemptFailure::PerTryTimeout | AttemptFailure::GlobalTimeout => {
            LocalReply::new(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout", "upstream_response_timeout")
                .with_flag(ResponseFlag::UpstreamRequestTimeout)
        }
        AttemptFailure::DownstreamBody(e) => LocalReply::from_codec_error(e),
        AttemptFailure::Reset => reset(
            "connection termination",
            "upstream_reset_before_response_started{connection_termination}",
            ResponseFlag::UpstreamConnectionTermination,
        ),
        AttemptFailure::RemoteReset => reset(
            "remote reset",
            "upstream_reset_before_response_started{remote_reset}",
            ResponseFlag::UpstreamRemoteReset,
        ),
        AttemptFailure::RefusedStream => reset(
            "remote refused stream reset",
            "upstream_reset_before_response_started{remote_refused_stream_reset}",
            ResponseFlag::UpstreamRemoteReset,
        ),
        // A response Courier cannot read is the upstream's fault: 502, as Envoy.
        AttemptFailure::Protocol => reset_with(
            StatusCode::BAD_GATEWAY,
            "protocol error",
            "upstream_reset_before_response_started{protocol_error}",
            ResponseFlag::UpstreamProtocolError,
        ),
    }
}

/// Whether `policy` retries after `f`, as Envoy's `wouldRetryFromReset`: every
/// failure but an overflow is a reset (a per-try timeout is a local reset), retried
/// by `reset`, `5xx` and `gateway-error`; a connection failure also by
/// `connect-failure` and, since nothing was sent, `reset-before-request`; an
/// HTTP/2 REFUSED_STREAM also by `refused-stream`.
fn retries_failure(policy: &RetryPolicy, f: AttemptFailure) -> bool {
    let on = policy.retry_on;
    let any_reset = RetryOn::RESET | RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR;
    match f {
        AttemptFailure::Pool(p) if p.is_overflow() => false,
        AttemptFailure::GlobalTimeout | AttemptFailure::DownstreamBody(_) => false,
        AttemptFailure::Pool(_) => on.intersects(any_reset | RetryOn::CONNECT_FAILURE | RetryOn::RESET_BEFORE_REQUEST),
        AttemptFailure::RefusedStream => on.intersects(any_reset | RetryOn::REFUSED_STREAM),
        AttemptFailure::Reset
        | AttemptFailure::RemoteReset
        | AttemptFailure::Protocol
        | AttemptFailure::PerTryTimeout => on.intersects(any_reset),
    }
}

/// Envoy's jittered exponential back-off before retry `retry` (1 for the first): a
/// random wait in [0, (2ⁿ − 1)·base), then clamped to `max_interval`; n stops
/// growing once that range passes `max_interval`.
/// A route without `retry_back_off` takes its base from the runtime's
/// `upstream.base_retry_backoff_ms` (25 by default) and caps at 10× it, as Envoy.
fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let (base, max) = if policy.back_off_configured {
        (policy.base_interval.as_millis().max(1) as u64, policy.max_interval.as_millis().max(1) as u64)
    } else {
        let default = policy.base_interval.as_millis() as u64;
        let base = runtime::snapshot().map_or(default, |s| s.get_integer(BASE_RETRY_BACKOFF_KEY, default)).max(1);
        (base, base.saturating_mul(10))
    };
    let range = |n: u32| base.saturating_mul((1u64 << n.min(63)) - 1);
    let mut n = 1;
    for _ in 1..retry {
        if range(n) > max {
            break;
        }
        n += 1;
    }
    Duration::from_millis(crate::common::random::below(range(n)).min(max))
}

/// Envoy's runtime keys for retries.
const USE_RETRY_KEY: &str = "upstream.use_retry";
const BASE_RETRY_BACKOFF_KEY: &str = "upstream.base_retry_backoff_ms";

/// Waits `wait` before the next try; false when the route timeout ends first.
async fn back_off(wait: Duration, deadline: Option<Instant>) -> bool {
    let until = Instant::now() + wait;
    match deadline {
        Some(d) if d <= until => {
            tokio::time::sleep_until(d).await;
            false
        }
        _ => {
            tokio::time::sleep_until(until).await;
            true
        }
    }
}

/// Envoy's `x-envoy-expected-rq-timeout-ms` for a try starting `elapsed` after
/// the route timeout started (`setTimeoutHeaders`): the per-try timeout, else the
/// route timeout, capped by the time the route timeout has left (1 ms when none
/// is left); none without either timeout.
fn expected_timeout_ms(route: Option<Duration>, per_try: Option<Duration>, elapsed: Duration) -> Option<u64> {
    let global = route.map_or(0, |t| t.as_millis() as u64);
    let expected = match per_try.map_or(0, |t| t.as_millis() as u64) {
        0 => global,
        p => p,
    };
    if expected == 0 {
        return None;
    }
    if global == 0 {
        return Some(expected);
    }
    let elapsed = elapsed.as_millis() as u64;
    Some(if elapsed >= global { 1 } else { expected.min(global - elapsed) })
}

/// Sends the request to `cluster` with the action's timeouts and retry policy.
/// `parts.uri` must be origin-form (path and query) and `host` the `Host` to send.
/// `span`'s context is written in for each try, with the try's host (Envoy
/// injects it as each upstream request starts).
pub async fn forward(
    cluster: &Rc<ThreadLocalCluster>,
    action: &ForwardAction,
    parts: &mut http::request::Parts,
    mut body: ForwardBody,
    buffer_limit: u32,
    info: &mut StreamInfo,
    span: Option<&dyn crate::tracing::Span>,
) -> Result<UpstreamResponse, LocalReply> {
    let stats = &cluster.info.stats;
    let policy = action.retry_policy.as_ref();
    // With retries possible, record the body as it is sent so a retry can send
    // it again, up to the connection's buffer limit as Envoy does (a larger body
    // is sent once: `retry_or_shadow_abandoned`).
    if policy.is_some_and(|p| p.num_retries > 0 && !p.retry_on.is_empty()) {
        if let ForwardBody::Streaming(stream) = body {
            let abandoned = stats.retry_or_shadow_abandoned.clone();
            body = ForwardBody::Recorded(Recording::new(stream, buffer_limit as usize, abandoned));
        }
    }
    let timer_started = Instant::now();
    let deadline = action.timeout.map(|t| timer_started + t);
    // Envoy ignores a per-try timeout that is not shorter than the route timeout.
    let per_try = policy.and_then(|p| p.per_try_timeout).filter(|p| action.timeout.is_none_or(|t| *p < t));
    let mut retries_done = 0u32;
    let mut retry_guard: Option<ResourceGuard> = None;
    // The hosts tried so far, kept only for `previous_hosts`.
    let mut tried: Vec<std::net::SocketAddr> = Vec::new();
    loop {
        info.attempt_count += 1;
        let ctx = LbContext {
            restored_local: info.downstream_local_restored.then_some(info.downstream_local),
            headers: Some(&parts.headers),
        };
        let Some(host) = choose_host(cluster, policy, &tried, &ctx) else {
            stats.upstream_cx_none_healthy.inc();
            cluster.count_response_code(503);
            return Err(LocalReply::new(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream", "no_healthy_upstream")
                .with_flag(ResponseFlag::NoHealthyUpstream));
        };
        info.upstream_host = Some(host.address);
        if let Some(span) = span {
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let upstream = crate::tracing::UpstreamContext { path, address: Some(host.address) };
            span.inject_context(&mut parts.headers, &upstream);
        }
        if policy.is_some_and(|p| p.host_reselections.is_some()) {
            tried.push(host.address);
        }
        let started = Instant::now();
        let try_deadline = match (deadline, per_try) {
            (Some(d), Some(p)) => Some(d.min(started + p)),
            (Some(d), None) => Some(d),
            (None, Some(p)) => Some(started + p),
            (None, None) => None,
        };
        // The first try is told the whole timeout, a retry what is left of it.
        let elapsed = if retries_done == 0 { Duration::ZERO } else { started - timer_started };
        let try_request = Try {
            parts,
            expected_timeout_ms: expected_timeout_ms(action.timeout, per_try, elapsed),
            auto_host_rewrite: action.auto_host_rewrite,
            attempt_count: action.include_attempt_count.then_some(info.attempt_count),
            started,
            downstream: (info.downstream_remote, info.downstream_local, info.downstream_proxy_protocol_tlvs.clone()),
        };
        let attempt = attempt(cluster, &host, &try_request, &mut body, info);
        let outcome = match try_deadline {
            Some(at) => match tokio::time::timeout_at(at, attempt).await {
                Ok(r) => r,
                Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => Err(AttemptFailure::GlobalTimeout),
                Err(_) => Err(AttemptFailure::PerTryTimeout),
            },
            None => attempt.await,
        };
        match outcome {
            Ok((head, response_body, service_time, active)) => {
                let status = head.status.as_u16();
                // As Envoy's router: the upstream asks to be taken out of
                // rotation at once (its active health checker fails it).
                if head.headers.contains_key(X_ENVOY_IMMEDIATE_HEALTH_CHECK_FAIL) {
                    host.immediate_health_check_fail();
                }
                let retriable = policy.is_some_and(|p| p.retriable_response(status, &head.headers));
                if retriable && body.replayable() {
                    let next = next_retry(cluster, policy, retries_done);
                    if let NextRetry::Go(guard) = next {
                        // As Envoy: a retried response counts under `retry.*` (only
                        // the final one under `upstream_rq_<code>`) and as a host
                        // error; then it is dropped (on HTTP/1.1 its connection
                        // is not reused).
                        cluster.count_retried_response_code(status);
                        host.stats.rq_error.fetch_add(1, Ordering::Relaxed);
                        drop((response_body, active));
                        retry_guard = Some(guard);
                        retries_done += 1;
                        let wait = backoff(policy.expect("retriable implies a policy"), retries_done);
                        if !back_off(wait, deadline).await {
                            return Err(timed_out_in_back_off());
                        }
                        continue;
                    }
                    if let Some(flag) = next.refusal_flag() {
                        info.response_flags.set(flag);
                    }
                }
                if retries_done > 0 && !retriable {
                    stats.upstream_rq_retry_success.inc();
                }
                drop(retry_guard);
                host.stats.rq_success.fetch_add(u64::from(status < 500), Ordering::Relaxed);
                host.stats.rq_error.fetch_add(u64::from(status >= 500), Ordering::Relaxed);
                // This try is the last: the rest of the body need not be kept.
                if let ForwardBody::Recorded(r) = &body {
                    r.stop();
                }
                return Ok(UpstreamResponse { head, body: response_body, host, service_time, active });
            }
            Err(failure) => {
                match failure {
                    AttemptFailure::PerTryTimeout => {
                        stats.upstream_rq_per_try_timeout.inc();
                        host.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
                    }
                    AttemptFailure::GlobalTimeout => {
                        stats.upstream_rq_timeout.inc();
                        host.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
                    }
                    // Envoy 1.40 counts no upstream_rq_rx_reset for a refused stream.
                    AttemptFailure::Reset | AttemptFailure::RemoteReset => stats.upstream_rq_rx_reset.inc(),
                    AttemptFailure::Protocol => stats.upstream_cx_protocol_error.inc(),
                    AttemptFailure::Pool(_) | AttemptFailure::DownstreamBody(_) | AttemptFailure::RefusedStream => {}
                }
                // A pending overflow never reached a host (Envoy has none to charge).
                let charges_host = !matches!(
                    failure,
                    AttemptFailure::Pool(PoolFailure::PendingOverflow) | AttemptFailure::DownstreamBody(_)
                );
                let mut refusal = None;
                if let Some(p) = policy.filter(|p| retries_failure(p, failure) && body.replayable()) {
                    let next = next_retry(cluster, Some(p), retries_done);
                    refusal = next.refusal_flag();
                    if let NextRetry::Go(guard) = next {
                        host.stats.rq_error.fetch_add(u64::from(charges_host), Ordering::Relaxed);
                        retry_guard = Some(guard);
                        retries_done += 1;
                        if !back_off(backoff(p, retries_done), deadline).await {
                            return Err(timed_out_in_back_off());
                        }
                        continue;
                    }
                }
                // A refused retry is marked: an overflow always, a spent policy once
                // it retried at all.
                match refusal {
                    Some(ResponseFlag::UpstreamOverflow) => info.response_flags.set(ResponseFlag::UpstreamOverflow),
                    Some(flag) if retries_done > 0 => info.response_flags.set(flag),
                    _ => {}
                }
                // A pending-requests overflow never reached a host: Envoy logs none
                // (a max_requests overflow keeps the host it was to be sent to).
                if failure == AttemptFailure::Pool(PoolFailure::PendingOverflow) {
                    info.upstream_host = None;
                }
                let reply = failure_reply(failure, retries_done > 0);
                // Envoy's `chargeUpstreamAbort`: the reply's code counts as the
                // upstream's (a per-try timeout that ends the request is not a
                // route timeout: only `upstream_rq_per_try_timeout` counts it).
                if !matches!(failure, AttemptFailure::DownstreamBody(_)) {
                    cluster.count_response_code(reply.status.as_u16());
                }
                // An overflow is a dropped request in the next load report, as
                // Envoy charges it `dropped`.
                if matches!(failure, AttemptFailure::Pool(p) if p.is_overflow()) {
                    cluster.info.drop_overload.count_dropped();
                }
                host.stats.rq_error.fetch_add(u64::from(charges_host), Ordering::Relaxed);
                return Err(reply);
            }
        }
    }
}

/// The route timeout ended while waiting to retry: Envoy answers 504 with no
/// request in flight, so nothing is counted against the cluster or a host.
fn timed_out_in_back_off() -> LocalReply {
    failure_reply(AttemptFailure::GlobalTimeout, true)
}

/// Whether a retry may be taken, and if not, why.
enum NextRetry {
    Go(ResourceGuard),
    /// No policy, or its `num_retries` are spent.
    Exhausted,
    /// The `max_retries` circuit breaker is open.
    Overflow,
    /// The runtime's `upstream.use_retry` said no (Envoy's `RetryStatus::No`:
    /// the response goes through unmarked).
    Disabled,
}

impl NextRetry {
    /// The response flag of a request whose retry was refused: Envoy marks a spent
    /// policy `URX` and a breaker overflow `UO`.
    fn refusal_flag(&self) -> Option<ResponseFlag> {
        match self {
            NextRetry::Overflow => Some(ResponseFlag::UpstreamOverflow),
            NextRetry::Disabled => None,
            _ => Some(ResponseFlag::UpstreamRetryLimitExceeded),
        }
    }
}

/// Takes a retry if the policy has one left and the retry breaker allows it.
fn next_retry(cluster: &ThreadLocalCluster, policy: Option<&RetryPolicy>, done: u32) -> NextRetry {
    let Some(policy) = policy else { return NextRetry::Exhausted };
    let stats = &cluster.info.stats;
    if done >= policy.num_retries {
        stats.upstream_rq_retry_limit_exceeded.inc();
        return NextRetry::Exhausted;
    }
    match cluster.info.resources.try_acquire(Resource::Retries) {
        // Envoy asks the runtime after the limit and the breaker, as a percentage.
        Some(_) if !runtime::RuntimeFraction::new(USE_RETRY_KEY, runtime::Fraction::HUNDRED).enabled() => {
            NextRetry::Disabled
        }
        Some(g) => {
            stats.upstream_rq_retry.inc();
            stats.upstream_rq_retry_backoff_exponential.inc();
            NextRetry::Go(g)
        }
        None => {
            stats.upstream_rq_retry_overflow.inc();
            NextRetry::Overflow
        }
    }
}

/// What one try sends, besides the body.
struct Try<'a> {
    parts: &'a http::request::Parts,
    /// `x-envoy-expected-rq-timeout-ms` for this try, if any.
    expected_timeout_ms: Option<u64>,
    auto_host_rewrite: bool,
    /// `x-envoy-attempt-count` for this try (`include_request_attempt_count`).
    attempt_count: Option<u32>,
    started: Instant,
    /// The downstream connection's `(remote, local)` addresses and the PROXY
    /// TLVs its listener kept.
    downstream: super::auto_sni::DownstreamOfTry,
}

/// A host for the next try: under `previous_hosts`, one not tried yet if the
/// cluster's balancer gives one within `host_selection_retry_max_attempts`
/// more picks, else the last pick (Envoy's `RetryHostPredicate` loop).
fn choose_host(
    cluster: &ThreadLocalCluster,
    policy: Option<&RetryPolicy>,
    tried: &[std::net::SocketAddr],
    ctx: &LbContext<'_>,
) -> Option<Arc<Host>> {
    let mut host = cluster.choose_host(ctx)?;
    let Some(policy) = policy else { return Some(host) };
    for _ in 0..policy.host_reselections.unwrap_or(0) {
        if !policy.reselect(tried, host.address) {
            break;
        }
        host = cluster.choose_host(ctx)?;
    }
    Some(host)
}

/// One try: a pooled client (the pool attaches the request, counting it active),
/// then the request. A request that fails on a reused keep-alive connection before
/// any response is sent again on another connection once (the upstream closed it
/// while idle), if the body allows. The connection it goes on is recorded in `info`.
async fn attempt(
    cluster: &Rc<ThreadLocalCluster>,
    host: &Arc<Host>,
    try_request: &Try<'_>,
    body: &mut ForwardBody,
    info: &mut StreamInfo,
) -> Result<(http::response::Parts, UpstreamResponseBody, Duration, ActiveRequest), AttemptFailure> {
    let options =
        super::auto_sni::transport_options(&cluster.info, &try_request.parts.headers, &try_request.downstream);
    let pool = match cluster.info.protocol_for(try_request.parts.version) {
        // Boxed, as `attempt_h2` below.
        UpstreamProtocol::Auto => Box::pin(mixed_conn_pool::pool(cluster, host, options)).await.map_err(|f| {
            forget_negotiated(cluster, host, try_request, f);
            AttemptFailure::Pool(f)
        })?,
        protocol => cluster.http_pool(host, protocol.into(), options),
    };
    let mut stale_retry = true;
    let parts = try_request.parts;
    // This try's `x-envoy-expected-rq-timeout-ms`, with `auto_host_rewrite` the
    // host's name (the Host it replaces kept in `x-envoy-original-host`, as Envoy
    // does), and with `include_request_attempt_count` its `x-envoy-attempt-count`,
    // replace the router's headers of those names.
    let timeout = try_request.expected_timeout_ms.map(|ms| (X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, headers::number_value(ms)));
    let rewrite = (try_request.auto_host_rewrite && !host.hostname.is_empty())
        .then(|| {
            let new = HeaderValue::from_str(&host.hostname).ok()?;
            let original = parts.headers.get(http::header::HOST)?.clone();
            Some([(http::header::HOST, new), (headers::X_ENVOY_ORIGINAL_HOST, original)])
        })
        .flatten();
    let attempt_count = try_request.attempt_count.map(|n| (X_ENVOY_ATTEMPT_COUNT, headers::number_value(n.into())));
    let (new_host, original_host) = match rewrite {
        Some([h, o]) => (Some(h), Some(o)),
        None => (None, None),
    };
    // Built in place on the stack; the `None`s are skipped when the head is written.
    let overrides = [timeout, new_host, original_host, attempt_count];
    let request = RequestOut {
        method: &parts.method,
        target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &parts.headers,
        overrides: &overrides,
    };
    let pool = match pool {
        ConnPool::Http1(p) => p,
        // Boxed, so that the HTTP/1 path's future does not grow by it.
        ConnPool::Http2(p) => {
            return Box::pin(attempt_h2(cluster, host, &p, try_request, &request, body, info)).await;
        }
    };
    loop {
        let (mut client, breaker) = pool.acquire().await.map_err(|f| {
            forget_negotiated(cluster, host, try_request, f);
            AttemptFailure::Pool(f)
        })?;
        if let Some(connection) = client.connection_info() {
            info.set_upstream_connection(connection);
        }
        info.upstream_protocol = Some("HTTP/1.1");
        let active = ActiveRequest::new(
            try_request.started,
            breaker,
            cluster.info.stats.upstream_rq_active.clone(),
            host.clone(),
        );
        let sent = Instant::now();
        match client.send(&request, body.take_for_attempt()).await {
            Ok(head) => {
                let service_time = sent.elapsed();
                let body = client.into_response_body(&head);
                return Ok((head.parts, UpstreamResponseBody::Http1(body), service_time, active));
            }
            Err(failure) => {
                tracing::debug!(host = %host.address, "upstream request failed: {failure:?}");
                match failure {
                    RequestFailure::RequestBody(e) => return Err(AttemptFailure::DownstreamBody(e)),
                    RequestFailure::Protocol => return Err(AttemptFailure::Protocol),
                    RequestFailure::ClosedBeforeResponse if client.reused && stale_retry && body.replayable() => {
                        stale_retry = false;
                        continue;
                    }
                    RequestFailure::ClosedBeforeResponse | RequestFailure::Reset => return Err(AttemptFailure::Reset),
                }
            }
        }
    }
}

/// A failed connection of an `auto_config` cluster forgets what the host
/// negotiated, so the next request offers both protocols again.
fn forget_negotiated(cluster: &ThreadLocalCluster, host: &Arc<Host>, try_request: &Try<'_>, f: PoolFailure) {
    if cluster.info.upstream_protocol == UpstreamProtocol::Auto
        && matches!(f, PoolFailure::ConnectFailure | PoolFailure::ConnectTimeout)
    {
        let options =
            super::auto_sni::transport_options(&cluster.info, &try_request.parts.headers, &try_request.downstream);
        cluster.set_negotiated(host, &options, None);
    }
}

/// One try on an HTTP/2 pool: a stream slot, the request's headers, then the
/// body sent alongside waiting for the response headers (the response body
/// goes on sending it if the response comes first). A stream the upstream
/// never processed (REFUSED_STREAM, above a GOAWAY's last stream id, or a
/// connection that takes no new stream) is sent once more on another
/// connection, if the body allows.
async fn attempt_h2(
    cluster: &Rc<ThreadLocalCluster>,
    host: &Arc<Host>,
    pool: &Rc<Http2ConnPool>,
    try_request: &Try<'_>,
    request: &RequestOut<'_>,
    body: &mut ForwardBody,
    info: &mut StreamInfo,
) -> Result<(http::response::Parts, UpstreamResponseBody, Duration, ActiveRequest), AttemptFailure> {
    let mut resend = true;
    loop {
        let (mut stream, breaker) = pool.acquire().await.map_err(|f| {
            forget_negotiated(cluster, host, try_request, f);
            AttemptFailure::Pool(f)
        })?;
        info.set_upstream_connection(stream.connection_info());
        info.upstream_protocol = Some("HTTP/2");
        let active = ActiveRequest::new(
            try_request.started,
            breaker,
            cluster.info.stats.upstream_rq_active.clone(),
            host.clone(),
        );
        let headers = http2_conn_pool::request_headers(request, host.address);
        let Some((mut response, tx)) = stream.send_request(headers, body.ends_with_headers()) else {
            // Nothing was sent: the connection is drained; try another.
            if resend {
                resend = false;
                continue;
            }
            return Err(AttemptFailure::Reset);
        };
        let sent = Instant::now();
        let mut upload = Some(http2_conn_pool::upload(tx, body.take_for_attempt()));
        let head = std::future::poll_fn(|cx| {
            if let Some(up) = upload.as_mut() {
                if let Poll::Ready(result) = up.as_mut().poll(cx) {
                    upload = None;
                    if let Err(UploadFailure::RequestBody(e)) = result {
                        return Poll::Ready(Err(Ok(e)));
                    }
                }
            }
            Pin::new(&mut response).poll(cx).map(|r| r.map_err(Err))
        })
        .await;
        let e = match head {
            Ok(response) => {
                let service_time = sent.elapsed();
                let (mut parts, recv) = response.into_parts();
                // Framed downstream as HTTP/1.1 (the writer chunks a body of unknown length).
                parts.version = http::Version::HTTP_11;
                let body = Http2ResponseBody::new(recv, upload, stream);
                return Ok((parts, UpstreamResponseBody::Http2(body), service_time, active));
            }
            Err(Ok(e)) => return Err(AttemptFailure::DownstreamBody(e)),
            Err(Err(e)) => e,
        };
        tracing::debug!(host = %host.address, "upstream HTTP/2 stream failed: {e}");
        // The upstream (or the connection) ended the stream: no reset of Courier's,
        // unless `h2` found the upstream's frames malformed (Envoy counts a local
        // reset then, without an RST_STREAM: the connection is gone).
        if e.is_library() {
            stream.mark_codec_error();
        } else {
            stream.mark_ended();
        }
        let remote_reset = e.is_reset() && e.is_remote();
        let refused = remote_reset && e.reason() == Some(h2::Reason::REFUSED_STREAM);
        if remote_reset {
            stream.stats().rx_reset.inc();
        }
        let goaway = e.is_go_away() && e.is_remote();
        if goaway {
            stream.drain_connection();
        }
        // REFUSED_STREAM guarantees the upstream did nothing with the request
        // (RFC 9113 8.7): it goes once more on another connection. A stream the
        // GOAWAY cut is not resent: h2 reports streams above the last stream id
        // and streams the upstream then failed to finish alike, and the latter
        // may have been processed. The route's retry policy decides, as in Envoy.
        if refused && resend && body.replayable() {
            resend = false;
            continue;
        }
        return Err(match () {
            // Envoy counts a stream its GOAWAY cut as refused too.
            _ if refused || goaway => AttemptFailure::RefusedStream,
            _ if remote_reset => AttemptFailure::RemoteReset,
            _ if e.is_library() => AttemptFailure::Protocol,
            _ => AttemptFailure::Reset,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_envoys_jittered_exponential() {
        let policy = |base_interval: u64, max_interval: u64| RetryPolicy {
            retry_on: RetryOn::parse("5xx").expect("retry_on"),
            num_retries: 5,
            per_try_timeout: None,
            retriable_status_codes: vec![],
            base_interval: Duration::from_millis(base_interval),
            max_interval: Duration::from_millis(max_interval),
            back_off_configured: true,
            host_reselections: None,
        };
        let draws = |p: &RetryPolicy, retry: u32| -> Vec<u64> {
            (0..2000).map(|_| backoff(p, retry).as_millis() as u64).collect()
        };
        // Retry n waits in [0, (2^n - 1) x base): under 100, 300, 700 ms.
        let p = policy(100, 10_000);
        for (retry, below, reaches) in [(1, 100, 50), (2, 300, 200), (3, 700, 600)] {
            let d = draws(&p, retry);
            assert!(d.iter().all(|&w| w < below), "retry {retry}: {:?}", d.iter().max());
            assert!(d.iter().any(|&w| w >= reaches), "retry {retry} never waited {reaches} ms or more");
        }
        // max_interval clamps the draw (many waits are exactly the cap) and stops
        // the range from growing: retry 5 draws from [0, 300) as retry 2 does.
        let p = policy(100, 250);
        let d = draws(&p, 5);
        assert!(d.iter().all(|&w| w <= 250));
        assert!(d.iter().filter(|&&w| w == 250).count() > 200, "the cap is hit by a sixth of the draws");
    }

    #[test]
    fn expected_timeout_is_the_time_left_for_the_try() {
        let ms = Duration::from_millis;
        // The route timeout alone, or the shorter per-try timeout.
        assert_eq!(expected_timeout_ms(Some(ms(15000)), None, ms(0)), Some(15000));
        assert_eq!(expected_timeout_ms(Some(ms(3000)), Some(ms(200)), ms(0)), Some(200));
        // A retry is told what is left of the route timeout, capped by the per-try one.
        assert_eq!(expected_timeout_ms(Some(ms(15000)), None, ms(311)), Some(14689));
        assert_eq!(expected_timeout_ms(Some(ms(300)), Some(ms(200)), ms(250)), Some(50));
        assert_eq!(expected_timeout_ms(Some(ms(3000)), Some(ms(200)), ms(250)), Some(200));
        // Out of time: 1 ms, since 0 would mean no timeout.
        assert_eq!(expected_timeout_ms(Some(ms(300)), None, ms(300)), Some(1));
        // No route timeout: the per-try timeout, or no header.
        assert_eq!(expected_timeout_ms(None, Some(ms(200)), ms(900)), Some(200));
        assert_eq!(expected_timeout_ms(None, None, ms(0)), None);
    }

    #[test]
    fn reset_bodies_say_when_the_request_was_retried() {
        let f = AttemptFailure::Pool(PoolFailure::ConnectFailure);
        assert_eq!(
            failure_reply(f, false).body,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        );
        assert_eq!(
            failure_reply(f, true).body,
            "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: \
             remote connection failure"
        );
        let overflow = failure_reply(AttemptFailure::Pool(PoolFailure::ActiveOverflow), false);
        assert_eq!(overflow.body, "upstream connect error or disconnect/reset before headers. reset reason: overflow");
        assert_eq!(overflow.headers.get("x-envoy-overloaded").map(|v| v.as_bytes()), Some(&b"true"[..]));
        assert_eq!(failure_reply(AttemptFailure::PerTryTimeout, true).body, "upstream request timeout");
        // HTTP/2 stream resets, with Envoy's texts and flag (UR).
        let remote = failure_reply(AttemptFailure::RemoteReset, false);
        assert_eq!(
            remote.body,
            "upstream connect error or disconnect/reset before headers. reset reason: remote reset"
        );
        assert_eq!(remote.status, StatusCode::SERVICE_UNAVAILABLE);
        let refused = failure_reply(AttemptFailure::RefusedStream, false);
        assert!(refused.body.ends_with(b"reset reason: remote refused stream reset"), "{:?}", refused.body);
    }

    #[test]
    fn without_retry_back_off_the_runtime_sets_the_base() {
        use crate::runtime::{Entry, Layer, Snapshot};
        let values = [("upstream.base_retry_backoff_ms".to_string(), Entry::from_text("1000"))].into_iter().collect();
        runtime::publish_on_this_thread(Snapshot::new(vec![Layer { name: "static".into(), values }]));
        let policy = |configured| RetryPolicy {
            retry_on: RetryOn::parse("5xx").expect("retry_on"),
            num_retries: 1,
            per_try_timeout: None,
            retriable_status_codes: vec![],
            base_interval: Duration::from_millis(25),
            max_interval: Duration::from_millis(250),
            back_off_configured: configured,
            host_reselections: None,
        };
        let runtime_base: Vec<u64> = (0..2000).map(|_| backoff(&policy(false), 1).as_millis() as u64).collect();
        assert!(runtime_base.iter().all(|&w| w < 1000) && runtime_base.iter().any(|&w| w >= 500));
        assert!(
            (0..2000).all(|_| backoff(&policy(true), 1) < Duration::from_millis(25)),
            "a route's own back-off wins"
        );
    }

    #[test]
    fn a_refused_stream_is_retried_by_refused_stream_and_reset_a_remote_reset_not_by_refused_stream() {
        let policy = |on: &str| RetryPolicy {
            retry_on: RetryOn::parse(on).expect("retry_on"),
            num_retries: 1,
            per_try_timeout: None,
            retriable_status_codes: vec![],
            base_interval: Duration::from_millis(25),
            max_interval: Duration::from_millis(250),
            back_off_configured: false,
            host_reselections: None,
        };
        assert!(retries_failure(&policy("refused-stream"), AttemptFailure::RefusedStream));
        assert!(retries_failure(&policy("reset"), AttemptFailure::RefusedStream));
        assert!(!retries_failure(&policy("refused-stream"), AttemptFailure::RemoteReset));
        assert!(retries_failure(&policy("5xx"), AttemptFailure::RemoteReset));
        assert!(!retries_failure(&policy("connect-failure"), AttemptFailure::RemoteReset));
    }
}
