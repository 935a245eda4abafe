//! `envoy.filters.http.local_ratelimit`: a token bucket in front of the routes, so a
//! Courier process protects its upstreams without a rate limit service.
//!
//! Each request that the filter is *enabled* for (`filter_enabled`, 0% when absent,
//! as Envoy) takes one token. Without a token it is *rate limited*; if the filter is
//! also *enforced* for it (`filter_enforced`, 0% when absent) the request is answered
//! locally with `status` (429 unless a code ≥ 400 is set), the body
//! `local_rate_limited`, `response_headers_to_add` and the `RL` response flag;
//! otherwise it goes on with `request_headers_to_add_when_not_enforced` added.
//! Envoy 1.40 does not add `x-envoy-ratelimited` to these replies, so neither does
//! Courier.
//!
//! The filter-level bucket is shared by every worker (one per process, lock-free,
//! see `token_bucket`). A route's `typed_per_filter_config` LocalRateLimit replaces
//! the whole filter config for that route, with its own bucket and stat prefix.
//!
//! Stats: `<stat_prefix>.http_local_rate_limit.{enabled,enforced,ok,rate_limited,shadow_mode}`
//! (`shadow_mode` stays 0: it belongs to descriptors, which Courier does not do).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::XRateLimitHeadersRfcVersion;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::google::protobuf::Any;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::common::{self, Percent};
use super::filter::{EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use super::token_bucket::{Clock, Consume, MonotonicClock, TokenBucket};
use crate::config::{self, bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::formatter::FormatContext;
use crate::http::local_reply::LocalReply;
use crate::router::HeaderMutation;
use crate::router::PerRouteConfig;
use crate::runtime::RuntimeFraction;
use crate::stats::Store;
use crate::stream_info::ResponseFlag;

pub const NAME: &str = "envoy.filters.http.local_ratelimit";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

pub const EXTENSION: HttpFilterExtension = HttpFilterExtension {
    name: NAME,
    config_type: CONFIG_TYPE,
    create,
    per_route: Some((CONFIG_TYPE, create_per_route)),
};

/// Envoy refuses faster refills.
const MIN_FILL_INTERVAL: Duration = Duration::from_millis(50);

/// A `TokenBucket` config checked as Envoy checks it (`path` points at it);
/// the network rate limit filter's too.
pub(crate) fn token_bucket(
    tb: &envoy_types::pb::envoy::r#type::v3::TokenBucket,
    path: &FieldPath,
    clock: Arc<dyn Clock>,
) -> Result<TokenBucket, ConfigError> {
    let interval = tb
        .fill_interval
        .as_ref()
        .map(config::duration)
        .ok_or_else(|| path.field_error("fill_interval", "value is required"))?;
    if interval < MIN_FILL_INTERVAL {
        return Err(path.field_error("fill_interval", "local rate limit token bucket fill timer must be >= 50ms"));
    }
    if tb.max_tokens == 0 {
        return Err(path.field_error("max_tokens", "value must be greater than 0"));
    }
    let per_fill = tb.tokens_per_fill.as_ref().map_or(1, |v| v.value);
    if per_fill == 0 {
        return Err(path.field_error("tokens_per_fill", "value must be greater than 0"));
    }
    Ok(TokenBucket::new(tb.max_tokens, per_fill, interval, clock))
}

/// The body of a rate limited reply (also its `%RESPONSE_CODE_DETAILS%`).
const BODY: &str = "local_rate_limited";

define_stats! {
    /// `<stat_prefix>.http_local_rate_limit.*`
    #[derive(Debug)]
    pub struct LocalRateLimitStats {
        counter enabled,
        counter enforced,
        counter ok,
        counter rate_limited,
        counter shadow_mode,
    }
}

/// One LocalRateLimit config: the filter's, or a route's.
#[derive(Debug)]
pub struct RateLimitConfig {
    /// `None`: no `token_bucket` (allowed at filter level): every request passes.
    bucket: Option<TokenBucket>,
    enabled: RuntimeFraction,
    enforced: RuntimeFraction,
    status: StatusCode,
    response_headers: HeaderMutation,
    request_headers_when_not_enforced: HeaderMutation,
    x_ratelimit_headers: bool,
    retry_after: bool,
    /// `None` for a route's config built without a stats store: its decisions are
    /// counted in the filter's stats instead.
    stats: Option<Arc<LocalRateLimitStats>>,
}

impl RateLimitConfig {
    /// Builds a config; `path` points at the `LocalRateLimit`. A route's config
    /// (`per_route`) must have a token bucket.
    pub fn from_proto(
        cfg: &LocalRateLimit,
        path: &FieldPath,
        per_route: bool,
        store: Option<&Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<RateLimitConfig, ConfigError> {
        if cfg.local_rate_limit_per_downstream_connection {
            return Err(common::unsupported(
                path,
                "local_rate_limit_per_downstream_connection",
                "a token bucket per connection (local_rate_limit_per_downstream_connection: true)",
            ));
        }
        let bucket = match &cfg.token_bucket {
            Some(tb) => Some(token_bucket(tb, &path.child("token_bucket"), clock)?),
            None if per_route => {
                return Err(path.field_error("token_bucket", "value is required in a per-route config"))
            }
            None => None,
        };
        let status = cfg
            .status
            .as_ref()
            .and_then(|s| u16::try_from(s.code).ok())
            .filter(|c| *c >= 400)
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let response_headers =
            HeaderMutation::additions(&cfg.response_headers_to_add, path, "response_headers_to_add")?;
        let request_headers_when_not_enforced = HeaderMutation::additions(
            &cfg.request_headers_to_add_when_not_enforced,
            path,
            "request_headers_to_add_when_not_enforced",
        )?;
        Ok(RateLimitConfig {
            bucket,
            enabled: Percent::from_runtime(cfg.filter_enabled.as_ref(), Percent::ZERO),
            enforced: Percent::from_runtime(cfg.filter_enforced.as_ref(), Percent::ZERO),
            status,
            response_headers,
            request_headers_when_not_enforced,
            x_ratelimit_headers: cfg.enable_x_ratelimit_headers == XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
            retry_after: cfg.enable_retry_after_header,
            stats: store.map(|s| Arc::new(LocalRateLimitStats::new(s, &stat_prefix(&cfg.stat_prefix)))),
        })
    }
}

fn stat_prefix(prefix: &str) -> String {
    format!("{prefix}.http_local_rate_limit.")
}

fn decode(any: &Any, path: &FieldPath) -> Result<LocalRateLimit, ConfigError> {
    common::check_supported(any, path)?;
    decode_any(any, path)
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    let cfg = decode(any, path)?;
    Ok(Arc::new(
        LocalRateLimitFactory::new(&cfg, path, ctx.store, Arc::new(MonotonicClock::new()))?.named(ctx.filter_name),
    ))
}

/// The per-route constructor of the registry, which has no stats store to give
/// (route decisions then count in the filter's stats).
fn create_per_route(any: &Any, path: &FieldPath, store: &Store) -> Result<PerRouteConfig, ConfigError> {
    per_route_config(any, path, Some(store))
}

/// A route's LocalRateLimit; with a `store`, its stats use its own `stat_prefix`,
/// as Envoy's.
pub fn per_route_config(any: &Any, path: &FieldPath, store: Option<&Store>) -> Result<PerRouteConfig, ConfigError> {
    let cfg = decode(any, path)?;
    Ok(Arc::new(RateLimitConfig::from_proto(&cfg, path, true, store, Arc::new(MonotonicClock::new()))?))
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct LocalRateLimitFactory {
    config: Arc<RateLimitConfig>,
    stats: Arc<LocalRateLimitStats>,
    /// The filter's configured name: its routes' configs are found under it.
    name: Arc<str>,
}

impl LocalRateLimitFactory {
    pub fn new(
        cfg: &LocalRateLimit,
        path: &FieldPath,
        store: &Store,
        clock: Arc<dyn Clock>,
    ) -> Result<LocalRateLimitFactory, ConfigError> {
        let config = RateLimitConfig::from_proto(cfg, path, false, Some(store), clock)?;
        let stats = Arc::new(LocalRateLimitStats::new(store, &stat_prefix(&cfg.stat_prefix)));
        Ok(LocalRateLimitFactory { config: Arc::new(config), stats, name: NAME.into() })
    }

    /// The factory of a filter configured under `name`.
    pub fn named(self, name: &str) -> Self {
        LocalRateLimitFactory { name: name.into(), ..self }
    }
}

impl StreamFilterFactory for LocalRateLimitFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(LocalRateLimitFilter {
            config: self.config.clone(),
            stats: self.stats.clone(),
            name: self.name.clone(),
            x_headers: None,
        })
    }
}

/// Values of the `x-ratelimit-*` headers (draft 03) for the response.
#[derive(Debug, Clone, Copy)]
struct XRateLimit {
    limit: u64,
    remaining: u64,
    reset_secs: u64,
}

struct LocalRateLimitFilter {
    config: Arc<RateLimitConfig>,
    stats: Arc<LocalRateLimitStats>,
    name: Arc<str>,
    x_headers: Option<XRateLimit>,
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl StreamFilter for LocalRateLimitFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        let route = cx.route;
        let config = route.and_then(|r| r.per_filter_config::<RateLimitConfig>(&self.name)).unwrap_or(&self.config);
        let stats = config.stats.as_deref().unwrap_or(&self.stats);
        if !config.enabled.enabled() {
            return FilterStatus::Continue;
        }
        stats.enabled.inc();
        let Some(bucket) = &config.bucket else {
            stats.ok.inc();
            return FilterStatus::Continue;
        };
        let result = bucket.consume();
        if config.x_ratelimit_headers {
            let remaining = match result {
                Consume::Allowed { remaining } => remaining,
                Consume::Limited { .. } => 0,
            };
            let reset_secs = ceil_secs(bucket.next_token_in(result));
            self.x_headers = Some(XRateLimit { limit: bucket.max_tokens(), remaining, reset_secs });
        }
        let Consume::Limited { next_token_in } = result else {
            stats.ok.inc();
            return FilterStatus::Continue;
        };
        stats.rate_limited.inc();
        if !config.enforced.enabled() {
            config.request_headers_when_not_enforced.apply_to_request(parts, cx.info);
            return FilterStatus::Continue;
        }
        stats.enforced.inc();
        let mut reply = LocalReply::new(config.status, BODY, BODY).with_flag(ResponseFlag::RateLimited);
        config.response_headers.apply(&mut reply.headers, &FormatContext::for_request(parts, cx.info));
        if config.retry_after
            && config.status == StatusCode::TOO_MANY_REQUESTS
            && !reply.headers.contains_key(http::header::RETRY_AFTER)
        {
            reply.headers.insert(http::header::RETRY_AFTER, HeaderValue::from(ceil_secs(next_token_in).max(1)));
        }
        FilterStatus::LocalReply(reply)
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        _end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        if let Some(x) = self.x_headers {
            set_x_ratelimit(&mut parts.headers, x);
        }
        EncodeStatus::Continue
    }
}

fn set_x_ratelimit(headers: &mut HeaderMap, x: XRateLimit) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(x.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(x.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(x.reset_secs));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{
        any_from_yaml, decode as run_decode, decode_routed, encode as run_encode, request, route_table,
    };
    use crate::extensions::filters::http::token_bucket::ManualClock;

    fn factory(yaml: &str, store: &Store, clock: Arc<ManualClock>) -> LocalRateLimitFactory {
        try_factory(yaml, store, clock).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_factory(yaml: &str, store: &Store, clock: Arc<ManualClock>) -> Result<LocalRateLimitFactory, ConfigError> {
        let any = any_from_yaml(CONFIG_TYPE, yaml);
        let path = FieldPath::starting_at("http_filters[0].typed_config");
        let cfg = decode(&any, &path)?;
        LocalRateLimitFactory::new(&cfg, &path, store, clock)
    }

    const ENFORCED: &str = "
        stat_prefix: rl
        token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 1s}
        filter_enabled: {default_value: {numerator: 100}}
        filter_enforced: {default_value: {numerator: 100}}
        response_headers_to_add: [{header: {key: x-custom, value: 'yes'}}]";

    fn status(f: &LocalRateLimitFactory) -> FilterStatus {
        let mut filter = f.create();
        let mut req = request("GET", "/", &[]);
        run_decode(filter.as_mut(), &mut req, None)
    }

    #[test]
    fn bucket_exhaustion_and_refill() {
        let store = Store::new();
        let clock = Arc::new(ManualClock::default());
        let f = factory(ENFORCED, &store, clock.clone());
        assert!(matches!(status(&f), FilterStatus::Continue));
        assert!(matches!(status(&f), FilterStatus::Continue));
        let FilterStatus::LocalReply(reply) = status(&f) else { panic!("expected a local reply") };
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.body, "local_rate_limited");
        assert_eq!(reply.details, "local_rate_limited");
        assert_eq!(reply.flag, Some(ResponseFlag::RateLimited));
        assert_eq!(reply.headers["x-custom"], "yes");
        assert!(!reply.headers.contains_key("x-envoy-ratelimited"), "Envoy 1.40 does not add it");
        assert!(!reply.headers.contains_key("retry-after"));

        clock.advance(Duration::from_millis(999));
        assert!(matches!(status(&f), FilterStatus::LocalReply(_)));
        clock.advance(Duration::from_millis(1));
        assert!(matches!(status(&f), FilterStatus::Continue), "one token back after fill_interval");
        assert!(matches!(status(&f), FilterStatus::LocalReply(_)));

        let v = |n: &str| store.counter_value(&format!("rl.http_local_rate_limit.{n}"));
        assert_eq!(v("enabled"), Some(6));
        assert_eq!(v("ok"), Some(3));
        assert_eq!(v("rate_limited"), Some(3));
        assert_eq!(v("enforced"), Some(3));
        assert_eq!(v("shadow_mode"), Some(0));
    }

    #[test]
    fn bucket_is_shared_by_workers() {
        let store = Store::new();
        let f = Arc::new(factory(
            "{stat_prefix: rl, token_bucket: {max_tokens: 100, fill_interval: 3600s},
              filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}}}",
            &store,
            Arc::new(ManualClock::default()),
        ));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || (0..50).filter(|_| matches!(status(&f), FilterStatus::Continue)).count())
            })
            .collect();
        let allowed: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        assert_eq!(allowed, 100);
        assert_eq!(store.counter_value("rl.http_local_rate_limit.rate_limited"), Some(100));
    }

    #[test]
    fn disabled_by_default_and_not_enforced_adds_request_headers() {
        let store = Store::new();
        let clock = Arc::new(ManualClock::default());
        // No filter_enabled: 0% of requests, nothing counted, no token taken.
        let f =
            factory("{stat_prefix: disabled, token_bucket: {max_tokens: 1, fill_interval: 1s}}", &store, clock.clone());
        for _ in 0..3 {
            assert!(matches!(status(&f), FilterStatus::Continue));
        }
        assert_eq!(store.counter_value("disabled.http_local_rate_limit.enabled"), Some(0));

        let f = factory(
            "{stat_prefix: shadow, token_bucket: {max_tokens: 1, fill_interval: 1s},
              filter_enabled: {default_value: {numerator: 100}},
              request_headers_to_add_when_not_enforced: [{header: {key: x-limited, value: 'true'}}]}",
            &store,
            clock,
        );
        let mut filter = f.create();
        let mut req = request("GET", "/", &[]);
        assert!(matches!(run_decode(filter.as_mut(), &mut req, None), FilterStatus::Continue));
        assert!(!req.headers.contains_key("x-limited"));
        let mut filter = f.create();
        let mut req = request("GET", "/", &[]);
        assert!(matches!(run_decode(filter.as_mut(), &mut req, None), FilterStatus::Continue));
        assert_eq!(req.headers["x-limited"], "true");
        assert_eq!(store.counter_value("shadow.http_local_rate_limit.rate_limited"), Some(1));
        assert_eq!(store.counter_value("shadow.http_local_rate_limit.enforced"), Some(0));
    }

    #[test]
    fn no_bucket_lets_everything_through() {
        let store = Store::new();
        let f = factory(
            "{stat_prefix: nb, filter_enabled: {default_value: {numerator: 100}}}",
            &store,
            Arc::new(ManualClock::default()),
        );
        assert!(matches!(status(&f), FilterStatus::Continue));
        assert_eq!(store.counter_value("nb.http_local_rate_limit.ok"), Some(1));
    }

    #[test]
    fn status_retry_after_and_x_ratelimit_headers() {
        let store = Store::new();
        let clock = Arc::new(ManualClock::default());
        let f = factory(
            "{stat_prefix: x, token_bucket: {max_tokens: 2, fill_interval: 60s},
              filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}},
              enable_x_ratelimit_headers: DRAFT_VERSION_03, enable_retry_after_header: true}",
            &store,
            clock.clone(),
        );
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut filter = f.create();
            let mut req = request("GET", "/", &[]);
            let st = run_decode(filter.as_mut(), &mut req, None);
            let code = match &st {
                FilterStatus::LocalReply(r) => r.status,
                _ => StatusCode::OK,
            };
            let mut resp = http::Response::builder().status(code).body(()).expect("response").into_parts().0;
            if let FilterStatus::LocalReply(r) = st {
                resp.headers = r.headers;
            }
            run_encode(filter.as_mut(), &mut resp, &req);
            let h = |n: &str| resp.headers.get(n).map(|v| v.to_str().unwrap_or("").to_string());
            seen.push((
                code.as_u16(),
                h("x-ratelimit-limit"),
                h("x-ratelimit-remaining"),
                h("x-ratelimit-reset"),
                h("retry-after"),
            ));
        }
        let s = |v: &str| Some(v.to_string());
        assert_eq!(seen[0], (200, s("2"), s("1"), s("0"), None));
        assert_eq!(seen[1], (200, s("2"), s("0"), s("60"), None));
        assert_eq!(seen[2], (429, s("2"), s("0"), s("60"), s("60")));

        // A status below 400 is replaced by 429.
        let f = factory(
            "{stat_prefix: low, status: {code: Found}, token_bucket: {max_tokens: 1, fill_interval: 1s},
              filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}}}",
            &store,
            clock.clone(),
        );
        let _ = status(&f);
        let FilterStatus::LocalReply(r) = status(&f) else { panic!("expected a local reply") };
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let f = factory(
            "{stat_prefix: z, status: {code: ServiceUnavailable}, token_bucket: {max_tokens: 1, fill_interval: 1s},
              filter_enabled: {default_value: {numerator: 100}}, filter_enforced: {default_value: {numerator: 100}},
              enable_retry_after_header: true}",
            &store,
            clock,
        );
        let _ = status(&f);
        let FilterStatus::LocalReply(r) = status(&f) else { panic!("expected a local reply") };
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!r.headers.contains_key("retry-after"), "Retry-After is for 429 only");
    }

    #[test]
    fn route_config_replaces_the_filter_bucket() {
        let store = Store::new();
        let f = factory(ENFORCED, &store, Arc::new(ManualClock::default()));
        let table = route_table(
            r#"
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {prefix: /limited}
                route: {cluster: c}
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: route_rl
                    token_bucket: {max_tokens: 1, fill_interval: 60s}
                    filter_enabled: {default_value: {numerator: 100}}
                    filter_enforced: {default_value: {numerator: 100}}
              - match: {prefix: /}
                route: {cluster: c}
            "#,
        );
        let run = |path: &str| decode_routed(&f, &table, "GET", path, true).0;
        assert!(matches!(run("/limited"), FilterStatus::Continue));
        assert!(matches!(run("/limited"), FilterStatus::LocalReply(_)), "the route's bucket holds one token");
        assert!(matches!(run("/other"), FilterStatus::Continue));
        assert!(matches!(run("/other"), FilterStatus::Continue), "the filter's bucket is untouched");
        assert!(matches!(run("/other"), FilterStatus::LocalReply(_)));
    }

    #[test]
    fn per_route_stats_use_the_route_prefix_with_a_store() {
        let store = Store::new();
        let any = any_from_yaml(
            CONFIG_TYPE,
            "{stat_prefix: r, token_bucket: {max_tokens: 1, fill_interval: 1s}, filter_enabled: {default_value: {numerator: 100}}}",
        );
        let cfg = per_route_config(&any, &FieldPath::starting_at("p"), Some(&store)).expect("valid");
        assert!(cfg.downcast_ref::<RateLimitConfig>().is_some());
        assert_eq!(store.counter_value("r.http_local_rate_limit.enabled"), Some(0));
    }

    #[test]
    fn config_errors_name_the_field() {
        let store = Store::new();
        let clock = Arc::new(ManualClock::default());
        let err = |yaml: &str| try_factory(yaml, &store, clock.clone()).unwrap_err().to_string();
        assert_eq!(
            err("{stat_prefix: a, token_bucket: {max_tokens: 1, fill_interval: 0.01s}}"),
            "http_filters[0].typed_config.token_bucket.fill_interval: local rate limit token bucket fill timer must be >= 50ms"
        );
        assert_eq!(
            err("{stat_prefix: a, local_rate_limit_per_downstream_connection: true}"),
            "http_filters[0].typed_config.local_rate_limit_per_downstream_connection: a token bucket per connection \
             (local_rate_limit_per_downstream_connection: true) is not supported by Courier"
        );
        assert_eq!(
            err("{stat_prefix: a, descriptors: [{entries: [{key: k, value: v}], token_bucket: {max_tokens: 1, fill_interval: 1s}}]}"),
            "http_filters[0].typed_config.descriptors: field 'descriptors' of \
             envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit is not supported by Courier"
        );
        let any = any_from_yaml(CONFIG_TYPE, "{stat_prefix: a}");
        let e = per_route_config(&any, &FieldPath::starting_at("r.typed_per_filter_config[\"x\"]"), None).unwrap_err();
        assert_eq!(e.path, "r.typed_per_filter_config[\"x\"].token_bucket");
    }
}
