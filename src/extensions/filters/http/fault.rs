//! `envoy.filters.http.fault`: injects delays and aborts into a share of the
//! requests, to test how clients and services cope with a slow or failing upstream.
//!
//! A request is eligible when every `headers` matcher matches and, with
//! `upstream_cluster`, when its route forwards to that cluster. Then:
//!
//! - **delay** (`fixed_delay`, or with `header_delay` the milliseconds in
//!   `x-envoy-fault-delay-request`) for `percentage` of the requests: the request
//!   waits, with the `DI` response flag, before going on;
//! - **abort** (`http_status`, or with `header_abort` the status in
//!   `x-envoy-fault-abort-request`, 200 to 599) for `percentage` of the requests: a
//!   local reply with that status, the body `fault filter abort` (or
//!   `response_body`), details `fault_filter_abort` and the `FI` flag. A request that
//!   is both delayed and aborted is aborted once the delay is over.
//!
//! With header-controlled faults, `x-envoy-fault-delay-request-percentage` /
//! `x-envoy-fault-abort-request-percentage` set the numerator (capped at the
//! configured one, over the configured denominator). An unset `percentage` is 0%,
//! as in Envoy. `max_active_faults` bounds the faults in progress (a fault is active
//! until its stream ends); a fault that would exceed it is skipped and counted in
//! `faults_overflow`. A route's `typed_per_filter_config` HTTPFault replaces the
//! filter's settings for that route.
//!
//! The runtime overrides these as Envoy's default runtime keys do:
//! `fault.http.abort.abort_percent` and `fault.http.delay.fixed_delay_percent` (an
//! integer numerator over the configured denominator), `fault.http.abort.http_status`,
//! `fault.http.delay.fixed_duration_ms` and `fault.http.max_active_faults`; a request
//! naming its downstream cluster `c` reads `fault.http.c.abort.abort_percent`,
//! `fault.http.c.abort.http_status`, `fault.http.c.delay.fixed_delay_percent` and
//! `fault.http.c.delay.fixed_duration_ms` instead, where Envoy does.
//!
//! Stats (`http.<stat_prefix>.fault.`): `aborts_injected`, `delays_injected`,
//! `faults_overflow`, `response_rl_injected` (always 0: no response rate limit) and
//! the gauge `active_faults`. A request that names its downstream cluster in
//! `x-envoy-downstream-service-cluster` also counts its injections in
//! `http.<stat_prefix>.fault.<cluster>.aborts_injected` / `.delays_injected`, as
//! Envoy's do, unless `disable_downstream_cluster_stats`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{fault_delay::FaultDelaySecifier, FaultDelay};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{fault_abort::ErrorType, FaultAbort, HttpFault};
use envoy_types::pb::google::protobuf::Any;
use http::request::Parts;
use http::StatusCode;

use super::common::{self, Percent};
use super::filter::{FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{self, bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::LocalReply;
use crate::router::PerRouteConfig;
use crate::router::{ClusterSelector, HeaderMatcher, Route, RouteAction};
use crate::runtime::{self, Snapshot};
use crate::stats::{Gauge, Store};
use crate::stream_info::ResponseFlag;

pub const NAME: &str = "envoy.filters.http.fault";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((CONFIG_TYPE, create_per_route)),
};

const DEFAULT_BODY: &str = "fault filter abort";
const DETAILS: &str = "fault_filter_abort";
const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
const ABORT_PERCENTAGE_HEADER: &str = "x-envoy-fault-abort-request-percentage";
const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENTAGE_HEADER: &str = "x-envoy-fault-delay-request-percentage";

/// Envoy's default runtime keys (its `*_runtime` fields, which Courier refuses,
/// would rename them); `fault.http.<cluster>.<suffix>` for a downstream cluster.
const ABORT_PERCENT_KEY: &str = "abort.abort_percent";
const ABORT_HTTP_STATUS_KEY: &str = "abort.http_status";
const DELAY_PERCENT_KEY: &str = "delay.fixed_delay_percent";
const DELAY_DURATION_KEY: &str = "delay.fixed_duration_ms";
const MAX_ACTIVE_FAULTS_KEY: &str = "fault.http.max_active_faults";

/// The runtime key for `suffix`: the downstream cluster's when the request names one.
fn fault_key(suffix: &str, downstream_cluster: Option<&str>) -> String {
    match downstream_cluster {
        Some(c) => format!("fault.http.{c}.{suffix}"),
        None => format!("fault.http.{suffix}"),
    }
}

/// Envoy's `featureEnabled(key, percentage)`: the runtime's value for `key`, else
/// `percentage`, sampled.
fn runtime_enabled(rt: Option<&Snapshot>, key: impl FnOnce() -> String, percentage: Percent) -> bool {
    match rt {
        Some(s) => s.feature_enabled(&key(), percentage.into()),
        None => percentage.sample(),
    }
}

define_stats! {
    /// `http.<stat_prefix>.fault.*`
    #[derive(Debug)]
    pub struct FaultStats {
        counter aborts_injected,
        counter delays_injected,
        counter faults_overflow,
        counter response_rl_injected,
        gauge active_faults,
    }
}

#[derive(Debug)]
enum AbortStatus {
    Fixed(StatusCode),
    /// From `x-envoy-fault-abort-request`.
    Header,
}

#[derive(Debug)]
struct Abort {
    status: AbortStatus,
    percentage: Percent,
    body: Bytes,
}

#[derive(Debug)]
enum DelayDuration {
    Fixed(Duration),
    /// Milliseconds from `x-envoy-fault-delay-request`.
    Header,
}

#[derive(Debug)]
struct Delay {
    duration: DelayDuration,
    percentage: Percent,
}

/// A compiled `HTTPFault`: the filter's, or a route's.
#[derive(Debug)]
pub struct FaultSettings {
    abort: Option<Abort>,
    delay: Option<Delay>,
    headers: Vec<HeaderMatcher>,
    upstream_cluster: Option<String>,
    max_active_faults: Option<u32>,
}

impl FaultSettings {
    /// Compiles `f`; `path` points at the `HTTPFault`.
    pub fn from_proto(f: &HttpFault, path: &FieldPath) -> Result<FaultSettings, ConfigError> {
        let mut p = path.clone();
        p.push_field("abort");
        let abort = f.abort.as_ref().map(|a| abort(a, &p)).transpose()?;
        p.pop();
        p.push_field("delay");
        let delay = f.delay.as_ref().map(|d| delay(d, &p)).transpose()?;
        p.pop();
        p.push_field("headers");
        let headers = HeaderMatcher::list(&f.headers, &p)?;
        Ok(FaultSettings {
            abort,
            delay,
            headers,
            upstream_cluster: Some(f.upstream_cluster.clone()).filter(|c| !c.is_empty()),
            max_active_faults: f.max_active_faults.as_ref().map(|v| v.value),
        })
    }

    /// The delay to inject into this request, if any (a zero delay is none);
    /// `rt` may override the percentage and duration (see the module doc).
    fn delay_for(&self, parts: &Parts, rt: Option<&Snapshot>, downstream: Option<&str>) -> Option<Duration> {
        let delay = self.delay.as_ref()?;
        let percentage = match delay.duration {
            DelayDuration::Fixed(_) => delay.percentage,
            DelayDuration::Header => header_percentage(parts, DELAY_PERCENTAGE_HEADER, delay.percentage),
        };
        if !runtime_enabled(rt, || fault_key(DELAY_PERCENT_KEY, downstream), percentage) {
            return None;
        }
        let duration = match delay.duration {
            DelayDuration::Fixed(d) => d,
            DelayDuration::Header => Duration::from_millis(header_number(parts, DELAY_HEADER)?),
        };
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let ms = rt.map_or(ms, |s| s.get_integer(&fault_key(DELAY_DURATION_KEY, None), ms));
        let ms = match (rt, downstream) {
            (Some(s), Some(_)) => s.get_integer(&fault_key(DELAY_DURATION_KEY, downstream), ms),
            _ => ms,
        };
        Some(Duration::from_millis(ms)).filter(|d| !d.is_zero())
    }

    /// The reply to abort this request with, if any; `rt` may override the
    /// percentage and status (see the module doc).
    fn abort_for(&self, parts: &Parts, rt: Option<&Snapshot>, downstream: Option<&str>) -> Option<LocalReply> {
        let abort = self.abort.as_ref()?;
        let percentage = match abort.status {
            AbortStatus::Fixed(_) => abort.percentage,
            AbortStatus::Header => header_percentage(parts, ABORT_PERCENTAGE_HEADER, abort.percentage),
        };
        if !runtime_enabled(rt, || fault_key(ABORT_PERCENT_KEY, downstream), percentage) {
            return None;
        }
        let status = match abort.status {
            AbortStatus::Fixed(s) => s,
            AbortStatus::Header => header_number(parts, ABORT_HEADER)
                .filter(|c| (200..600).contains(c))
                .and_then(|c| u16::try_from(c).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())?,
        };
        // As Envoy, a downstream cluster's key falls back to the configured status,
        // not to the general key; a runtime value outside [200, 600) is ignored.
        let key = fault_key(ABORT_HTTP_STATUS_KEY, downstream);
        let status = rt
            .map(|s| s.get_integer(&key, u64::from(status.as_u16())))
            .filter(|c| (200..600).contains(c))
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(status);
        Some(LocalReply::new(status, abort.body.clone(), DETAILS).with_flag(ResponseFlag::FaultInjected))
    }

    /// With `upstream_cluster`, true only when the route forwards to that cluster.
    fn targets(&self, route: Option<&Arc<Route>>, parts: &Parts) -> bool {
        let Some(wanted) = &self.upstream_cluster else { return true };
        match route.map(|r| &r.action) {
            Some(RouteAction::Forward(fwd)) => match &fwd.cluster {
                ClusterSelector::Name(name) => name == wanted,
                ClusterSelector::Header(h) => parts.headers.get(h).is_some_and(|v| v.as_bytes() == wanted.as_bytes()),
                // The weighted pick happens in the router, after the filters.
                ClusterSelector::Weighted { .. } => false,
            },
            _ => false,
        }
    }
}

fn abort(a: &FaultAbort, path: &FieldPath) -> Result<Abort, ConfigError> {
    let status = match &a.error_type {
        Some(ErrorType::HttpStatus(code)) => AbortStatus::Fixed(
            u16::try_from(*code)
                .ok()
                .filter(|c| (200..600).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| path.field_error("http_status", "value must be inside range [200, 600)"))?,
        ),
        Some(ErrorType::HeaderAbort(_)) => AbortStatus::Header,
        Some(ErrorType::GrpcStatus(_)) => return Err(common::unsupported(path, "grpc_status", "field 'grpc_status'")),
        None => return Err(path.error("one of http_status, grpc_status or header_abort must be set")),
    };
    let body = if a.response_body.is_empty() {
        Bytes::from_static(DEFAULT_BODY.as_bytes())
    } else {
        Bytes::from(a.response_body.clone())
    };
    Ok(Abort { status, percentage: a.percentage.as_ref().map_or(Percent::ZERO, Percent::from_proto), body })
}

fn delay(d: &FaultDelay, path: &FieldPath) -> Result<Delay, ConfigError> {
    let duration = match &d.fault_delay_secifier {
        // Envoy reads the delay in whole milliseconds.
        Some(FaultDelaySecifier::FixedDelay(fixed)) => DelayDuration::Fixed(Duration::from_millis(
            u64::try_from(config::duration(fixed).as_millis()).unwrap_or(u64::MAX),
        )),
        Some(FaultDelaySecifier::HeaderDelay(_)) => DelayDuration::Header,
        None => return Err(path.error("one of fixed_delay or header_delay must be set")),
    };
    Ok(Delay { duration, percentage: d.percentage.as_ref().map_or(Percent::ZERO, Percent::from_proto) })
}

/// A request header holding a non-negative integer.
fn header_number(parts: &Parts, name: &str) -> Option<u64> {
    parts.headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The configured percentage, with the numerator from `header` when it holds a
/// number (never above the configured numerator).
fn header_percentage(parts: &Parts, header: &str, configured: Percent) -> Percent {
    match header_number(parts, header) {
        Some(n) => configured.with_numerator_at_most(n),
        None => configured,
    }
}

fn decode_settings(any: &Any, path: &FieldPath) -> Result<FaultSettings, ConfigError> {
    common::check_supported(any, path)?;
    let f: HttpFault = decode_any(any, path)?;
    FaultSettings::from_proto(&f, path)
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    let f: HttpFault = decode_any(any, path)?;
    let settings = FaultSettings::from_proto(&f, path)?;
    let factory = FaultFactory::new(settings, ctx.store, ctx.hcm_stat_prefix, !f.disable_downstream_cluster_stats);
    Ok(Arc::new(factory.named(ctx.filter_name)))
}

fn create_per_route(any: &Any, path: &FieldPath, _store: &Store) -> Result<PerRouteConfig, ConfigError> {
    Ok(Arc::new(decode_settings(any, path)?))
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct FaultFactory {
    settings: Arc<FaultSettings>,
    stats: Arc<FaultStats>,
    /// `None` with `disable_downstream_cluster_stats`.
    downstream: Option<Arc<DownstreamClusterStats>>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl FaultFactory {
    pub fn new(
        settings: FaultSettings,
        store: &Arc<Store>,
        hcm_stat_prefix: &str,
        downstream_cluster_stats: bool,
    ) -> FaultFactory {
        let prefix = format!("http.{hcm_stat_prefix}.fault.");
        let stats = Arc::new(FaultStats::new(store, &prefix));
        let downstream =
            downstream_cluster_stats.then(|| Arc::new(DownstreamClusterStats { store: store.clone(), prefix }));
        FaultFactory { settings: Arc::new(settings), stats, downstream, name: NAME.into() }
    }

    /// The factory of a filter configured under `name`.
    pub fn named(self, name: &str) -> Self {
        FaultFactory { name: name.into(), ..self }
    }
}

impl StreamFilterFactory for FaultFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(FaultFilter {
            settings: self.settings.clone(),
            stats: self.stats.clone(),
            downstream: self.downstream.clone(),
            name: self.name.clone(),
            active: None,
        })
    }
}

/// The header a request names its downstream (calling) cluster in.
const DOWNSTREAM_CLUSTER_HEADER: &str = "x-envoy-downstream-service-cluster";

/// `http.<stat_prefix>.fault.<downstream cluster>.{aborts,delays}_injected`: named
/// by the request, so created on first use (a rare path: injected faults only).
#[derive(Debug)]
struct DownstreamClusterStats {
    store: Arc<Store>,
    /// `http.<stat_prefix>.fault.`
    prefix: String,
}

impl DownstreamClusterStats {
    fn inc(&self, cluster: &str, counter: &str) {
        self.store.counter(&format!("{}{cluster}.{counter}", self.prefix)).inc();
    }
}

/// The downstream cluster a request names, when its stats are kept.
fn downstream_cluster(
    stats: &Option<Arc<DownstreamClusterStats>>,
    parts: &Parts,
) -> Option<(Arc<DownstreamClusterStats>, String)> {
    let stats = stats.as_ref()?;
    let cluster = parts.headers.get(DOWNSTREAM_CLUSTER_HEADER)?.to_str().ok().filter(|c| !c.is_empty())?;
    Some((stats.clone(), cluster.to_owned()))
}

/// One fault in progress: counted in `active_faults` until the stream ends.
struct ActiveFault(Arc<Gauge>);

impl Drop for ActiveFault {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct FaultFilter {
    settings: Arc<FaultSettings>,
    stats: Arc<FaultStats>,
    downstream: Option<Arc<DownstreamClusterStats>>,
    name: Arc<str>,
    active: Option<ActiveFault>,
}

/// Counts a stream's fault as active (once), unless that would exceed
/// `max_active_faults` (then `faults_overflow`).
/// The runtime's `fault.http.max_active_faults` overrides the configured limit.
fn activate(
    active: &mut Option<ActiveFault>,
    stats: &FaultStats,
    max_active_faults: Option<u32>,
    rt: Option<&Snapshot>,
) -> bool {
    if active.is_some() {
        return true;
    }
    let configured = max_active_faults.map_or(u64::MAX, u64::from);
    let max = rt.map_or(configured, |s| s.get_integer(MAX_ACTIVE_FAULTS_KEY, configured));
    if u64::try_from(stats.active_faults.value()).unwrap_or(0) >= max {
        stats.faults_overflow.inc();
        return false;
    }
    stats.active_faults.inc();
    *active = Some(ActiveFault(stats.active_faults.clone()));
    true
}

impl StreamFilter for FaultFilter {
    fn decode_headers(&mut self, parts: &mut Parts, _end: bool, cx: &mut StreamContext<'_>) -> FilterStatus {
        let route = cx.route;
        let settings = route.and_then(|r| r.per_filter_config::<FaultSettings>(&self.name)).unwrap_or(&self.settings);
        if !settings.targets(route, parts) || !HeaderMatcher::all(&settings.headers, parts) {
            return FilterStatus::Continue;
        }
        let rt = runtime::snapshot();
        let rt = rt.as_deref().map(|s| &**s);
        let cluster =
            parts.headers.get(DOWNSTREAM_CLUSTER_HEADER).and_then(|v| v.to_str().ok()).filter(|c| !c.is_empty());
        let abort = settings.abort_for(parts, rt, cluster);
        let delay = settings.delay_for(parts, rt, cluster);
        let downstream = downstream_cluster(&self.downstream, parts);
        if let Some(delay) = delay {
            if activate(&mut self.active, &self.stats, settings.max_active_faults, rt) {
                self.stats.delays_injected.inc();
                if let Some((stats, cluster)) = &downstream {
                    stats.inc(cluster, "delays_injected");
                }
                cx.info.response_flags.set(ResponseFlag::DelayInjected);
                let stats = self.stats.clone();
                return FilterStatus::Decide(Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    match abort {
                        Some(reply) => {
                            stats.aborts_injected.inc();
                            if let Some((stats, cluster)) = &downstream {
                                stats.inc(cluster, "aborts_injected");
                            }
                            FilterStatus::LocalReply(reply)
                        }
                        None => FilterStatus::Continue,
                    }
                }));
            }
        }
        match abort {
            Some(reply) if activate(&mut self.active, &self.stats, settings.max_active_faults, rt) => {
                self.stats.aborts_injected.inc();
                if let Some((stats, cluster)) = &downstream {
                    stats.inc(cluster, "aborts_injected");
                }
                FilterStatus::LocalReply(reply)
            }
            _ => FilterStatus::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{
        any_from_yaml, decode, decode_routed, decode_with, info, request, route_table,
    };

    fn factory(yaml: &str, store: &Arc<Store>) -> FaultFactory {
        let any = any_from_yaml(CONFIG_TYPE, yaml);
        let settings = decode_settings(&any, &FieldPath::starting_at("f")).unwrap_or_else(|e| panic!("{e}"));
        FaultFactory::new(settings, store, "ingress", true)
    }

    fn err(yaml: &str) -> ConfigError {
        let any = any_from_yaml(CONFIG_TYPE, yaml);
        decode_settings(&any, &FieldPath::starting_at("http_filters[1].typed_config")).unwrap_err()
    }

    fn run(f: &FaultFactory, headers: &[(&str, &str)]) -> FilterStatus {
        let mut filter = f.create();
        let mut req = request("GET", "/", headers);
        decode(filter.as_mut(), &mut req, None)
    }

    fn stat(store: &Store, name: &str) -> Option<u64> {
        store.counter_value(&format!("http.ingress.fault.{name}"))
    }

    #[test]
    fn abort_at_100_percent_and_never_at_0() {
        let store = Arc::new(Store::new());
        let f = factory("{abort: {http_status: 503, percentage: {numerator: 100}}}", &store);
        for _ in 0..20 {
            let FilterStatus::LocalReply(reply) = run(&f, &[]) else { panic!("expected an abort") };
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(reply.body, "fault filter abort");
            assert_eq!(reply.details, "fault_filter_abort");
            assert_eq!(reply.flag, Some(ResponseFlag::FaultInjected));
        }
        assert_eq!(stat(&store, "aborts_injected"), Some(20));
        assert_eq!(store.gauge_value("http.ingress.fault.active_faults"), Some(0), "released with the streams");

        let store = Arc::new(Store::new());
        for yaml in [
            "{abort: {http_status: 503, percentage: {numerator: 0}}}",
            "{abort: {http_status: 503}}",
            "{abort: {http_status: 503, percentage: {numerator: 100, denominator: MILLION}}, headers: [{name: x-never}]}",
        ] {
            let f = factory(yaml, &store);
            for _ in 0..50 {
                assert!(matches!(run(&f, &[]), FilterStatus::Continue), "{yaml}");
            }
        }
        assert_eq!(stat(&store, "aborts_injected"), Some(0));
    }

    #[test]
    fn fractional_denominators() {
        let store = Arc::new(Store::new());
        let f =
            factory("{abort: {http_status: 500, percentage: {numerator: 5000, denominator: TEN_THOUSAND}}}", &store);
        let aborted = (0..2000).filter(|_| matches!(run(&f, &[]), FilterStatus::LocalReply(_))).count();
        assert!((700..1300).contains(&aborted), "{aborted}");
    }

    #[tokio::test]
    async fn delay_then_abort() {
        let store = Arc::new(Store::new());
        let f = factory(
            "{delay: {fixed_delay: 0.05s, percentage: {numerator: 100}}, abort: {http_status: 418, percentage: {numerator: 100}},
              headers: [{name: x-fault, string_match: {exact: 'on'}}]}",
            &store,
        );
        assert!(matches!(run(&f, &[("x-fault", "off")]), FilterStatus::Continue));

        let mut filter = f.create();
        let mut req = request("GET", "/", &[("x-fault", "on")]);
        let mut info = info();
        let status = decode_with(filter.as_mut(), &mut req, None, &mut info);
        assert!(info.response_flags.has(ResponseFlag::DelayInjected));
        assert_eq!(stat(&store, "delays_injected"), Some(1));
        assert_eq!(store.gauge_value("http.ingress.fault.active_faults"), Some(1));
        let FilterStatus::Decide(wait) = status else { panic!("expected a delay, got {status:?}") };
        let started = std::time::Instant::now();
        let FilterStatus::LocalReply(reply) = wait.await else { panic!("expected an abort after the delay") };
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(reply.status.as_u16(), 418);
        assert_eq!(stat(&store, "aborts_injected"), Some(1));
        drop(filter);
        assert_eq!(store.gauge_value("http.ingress.fault.active_faults"), Some(0));
    }

    #[tokio::test]
    async fn delay_alone_continues() {
        let store = Arc::new(Store::new());
        let f = factory("{delay: {fixed_delay: 0.01s, percentage: {numerator: 100}}}", &store);
        let FilterStatus::Decide(wait) = run(&f, &[]) else { panic!("expected a delay") };
        assert!(matches!(wait.await, FilterStatus::Continue));
    }

    #[tokio::test]
    async fn header_controlled_faults() {
        let store = Arc::new(Store::new());
        let f = factory(
            "{abort: {header_abort: {}, percentage: {numerator: 100}}, delay: {header_delay: {}, percentage: {numerator: 100}}}",
            &store,
        );
        assert!(matches!(run(&f, &[]), FilterStatus::Continue), "no header, no fault");
        let FilterStatus::LocalReply(r) = run(&f, &[("x-envoy-fault-abort-request", "429")]) else { panic!("abort") };
        assert_eq!(r.status.as_u16(), 429);
        for bad in ["99", "600", "abc"] {
            assert!(matches!(run(&f, &[("x-envoy-fault-abort-request", bad)]), FilterStatus::Continue), "{bad}");
        }
        let headers = [("x-envoy-fault-abort-request", "500"), ("x-envoy-fault-abort-request-percentage", "0")];
        assert!(matches!(run(&f, &headers), FilterStatus::Continue));
        assert!(matches!(run(&f, &[("x-envoy-fault-delay-request", "0")]), FilterStatus::Continue));
        let FilterStatus::Decide(wait) = run(&f, &[("x-envoy-fault-delay-request", "10")]) else { panic!("delay") };
        assert!(matches!(wait.await, FilterStatus::Continue));
        // The header percentage is capped by the configured one.
        let f = factory("{abort: {header_abort: {}, percentage: {numerator: 0}}}", &store);
        let headers = [("x-envoy-fault-abort-request", "500"), ("x-envoy-fault-abort-request-percentage", "100")];
        assert!(matches!(run(&f, &headers), FilterStatus::Continue));
    }

    #[test]
    fn max_active_faults_overflows() {
        let store = Arc::new(Store::new());
        let f = factory("{abort: {http_status: 500, percentage: {numerator: 100}}, max_active_faults: 1}", &store);
        let mut first = f.create();
        let mut req = request("GET", "/", &[]);
        assert!(matches!(decode(first.as_mut(), &mut req, None), FilterStatus::LocalReply(_)));
        // `first`'s stream is still alive, so its fault still counts.
        assert!(matches!(run(&f, &[]), FilterStatus::Continue));
        assert_eq!(stat(&store, "faults_overflow"), Some(1));
        drop(first);
        assert!(matches!(run(&f, &[]), FilterStatus::LocalReply(_)));
    }

    #[test]
    fn route_override_and_upstream_cluster() {
        let store = Arc::new(Store::new());
        let f = factory("{abort: {http_status: 500, percentage: {numerator: 100}}, upstream_cluster: backend}", &store);
        let table = route_table(
            r#"
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {prefix: /override}
                route: {cluster: other}
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    abort: {http_status: 404, percentage: {numerator: 100}, response_body: gone}
              - match: {prefix: /backend}
                route: {cluster: backend}
              - match: {prefix: /}
                route: {cluster: other}
            "#,
        );
        let go = |path: &str| decode_routed(&f, &table, "GET", path, true).0;
        let FilterStatus::LocalReply(r) = go("/override") else { panic!("the route's fault applies") };
        assert_eq!((r.status.as_u16(), &r.body[..]), (404, &b"gone"[..]));
        let FilterStatus::LocalReply(r) = go("/backend") else { panic!("the filter's fault applies to its cluster") };
        assert_eq!(r.status.as_u16(), 500);
        assert!(matches!(go("/x"), FilterStatus::Continue), "another cluster is spared");
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = err("{abort: {grpc_status: 14, percentage: {numerator: 100}}}");
        assert_eq!(e.path, "http_filters[1].typed_config.abort.grpc_status");
        assert!(e.reason.ends_with("is not supported by Courier"), "{}", e.reason);
        let e = err("{abort: {http_status: 503}, downstream_nodes: [a]}");
        assert_eq!(e.path, "http_filters[1].typed_config.downstream_nodes");
        let e = err("{delay: {fixed_delay: 1s}, response_rate_limit: {fixed_limit: {limit_kbps: 1}}}");
        assert_eq!(e.path, "http_filters[1].typed_config.response_rate_limit");
        let e = err("{abort: {http_status: 503}, headers: [{name: x, string_match: {safe_regex: {regex: '(('}}}]}");
        assert_eq!(e.path, "http_filters[1].typed_config.headers[0].string_match.safe_regex.regex");
    }
}
