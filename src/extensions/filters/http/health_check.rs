//! `envoy.filters.http.health_check`: answers a load balancer's health checks
//! locally, so taking Courier out of rotation (`POST /healthcheck/fail` on the admin
//! endpoint) does not depend on any upstream.
//!
//! Only the non-pass-through mode exists: a request matching every `headers`
//! matcher (usually `:path` exact `/healthz`; the query string is part of `:path`)
//! is answered with an empty 200 (details `health_check_ok`), or while the server
//! is failing health checks with an empty 503 (details `health_check_failed`, flag
//! `LH`). Other requests pass through. As Envoy, the response to a health check
//! carries `x-envoy-upstream-healthchecked-cluster: <service cluster>`; the 503 and,
//! while failing, every other response through the filter carry
//! `x-envoy-immediate-health-check-fail: true`. A health check is marked in the
//! stream info (`health_check`), so the connection manager does not count it in
//! `downstream_rq_<class>` / `downstream_rq_completed`, as Envoy.

//!
//! `cache_time` only matters in pass-through mode and is ignored, as in Envoy.
//! Stats (`http.<stat_prefix>.health_check.`): `request_total`, `ok`, `failed`, and
//! `cached_response`, `degraded`, `failed_cluster_empty`, `failed_cluster_not_found`,
//! `failed_cluster_unhealthy` (always 0: they belong to pass-through mode and
//! `cluster_min_healthy_percentages`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::google::protobuf::Any;
use http::{HeaderValue, StatusCode};

use super::common;
use super::filter::{EncodeStatus, FilterStatus, StreamContext, StreamFilter, StreamFilterFactory};
use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::{HttpFilterContext, HttpFilterExtension};
use crate::http::local_reply::LocalReply;
use crate::router::HeaderMatcher;
use crate::stats::Store;
use crate::stream_info::ResponseFlag;

pub const NAME: &str = "envoy.filters.http.health_check";
const CONFIG_TYPE: &str = "envoy.extensions.filters.http.health_check.v3.HealthCheck";

pub const EXTENSION: HttpFilterExtension =
    HttpFilterExtension { name: NAME, config_type: CONFIG_TYPE, create, per_route: None };

const HEALTHCHECKED_CLUSTER: &str = "x-envoy-upstream-healthchecked-cluster";
const IMMEDIATE_FAIL: &str = "x-envoy-immediate-health-check-fail";

define_stats! {
    /// `http.<stat_prefix>.health_check.*`
    #[derive(Debug)]
    pub struct HealthCheckStats {
        counter request_total,
        counter ok,
        counter failed,
        counter cached_response,
        counter degraded,
        counter failed_cluster_empty,
        counter failed_cluster_not_found,
        counter failed_cluster_unhealthy,
    }
}

fn create(
    any: &Any,
    path: &FieldPath,
    ctx: &HttpFilterContext<'_>,
) -> Result<Arc<dyn StreamFilterFactory>, ConfigError> {
    common::check_supported(any, path)?;
    let cfg: HealthCheck = decode_any(any, path)?;
    Ok(Arc::new(HealthCheckFactory::new(
        &cfg,
        path,
        ctx.store,
        ctx.hcm_stat_prefix,
        ctx.health_check_failed,
        ctx.service_cluster,
    )?))
}

/// The filter's config, shared by every worker.
#[derive(Debug)]
pub struct HealthCheckFactory {
    matchers: Arc<[HeaderMatcher]>,
    failing: Arc<AtomicBool>,
    service_cluster: HeaderValue,
    stats: Arc<HealthCheckStats>,
}

impl HealthCheckFactory {
    /// `path` points at the `HealthCheck`; `failing` is the server's
    /// `/healthcheck/fail` state.
    pub fn new(
        cfg: &HealthCheck,
        path: &FieldPath,
        store: &Store,
        hcm_stat_prefix: &str,
        failing: &Arc<AtomicBool>,
        service_cluster: &str,
    ) -> Result<HealthCheckFactory, ConfigError> {
        match &cfg.pass_through_mode {
            None => return Err(path.field_error("pass_through_mode", "value is required")),
            Some(b) if b.value => {
                return Err(common::unsupported(path, "pass_through_mode", "pass_through_mode: true"));
            }
            Some(_) => {}
        }
        if !cfg.cluster_min_healthy_percentages.is_empty() {
            return Err(common::unsupported(
                path,
                "cluster_min_healthy_percentages",
                "field 'cluster_min_healthy_percentages'",
            ));
        }
        let mut p = path.clone();
        p.push_field("headers");
        let matchers = HeaderMatcher::list(&cfg.headers, &p)?;
        let service_cluster = HeaderValue::from_str(service_cluster).map_err(|_| {
            ConfigError::new("", format!("service cluster '{service_cluster}' is not a valid header value"))
        })?;
        Ok(HealthCheckFactory {
            matchers: matchers.into(),
            failing: failing.clone(),
            service_cluster,
            stats: Arc::new(HealthCheckStats::new(store, &format!("http.{hcm_stat_prefix}.health_check."))),
        })
    }
}

impl StreamFilterFactory for HealthCheckFactory {
    fn create(&self) -> Box<dyn StreamFilter> {
        Box::new(HealthCheckFilter {
            matchers: self.matchers.clone(),
            failing: self.failing.clone(),
            service_cluster: self.service_cluster.clone(),
            stats: self.stats.clone(),
            health_check: false,
            failed: false,
        })
    }
}

struct HealthCheckFilter {
    matchers: Arc<[HeaderMatcher]>,
    failing: Arc<AtomicBool>,
    service_cluster: HeaderValue,
    stats: Arc<HealthCheckStats>,
    /// This stream is a health check.
    health_check: bool,
    /// The filter answered it with its 503 (the server is failing health checks).
    failed: bool,
}

impl StreamFilter for HealthCheckFilter {
    fn decode_headers(
        &mut self,
        parts: &mut http::request::Parts,
        _end: bool,
        cx: &mut StreamContext<'_>,
    ) -> FilterStatus {
        if !HeaderMatcher::all(&self.matchers, parts) {
            return FilterStatus::Continue;
        }
        self.health_check = true;
        // As Envoy's `streamInfo().healthCheck(true)`: the connection manager leaves
        // the stream out of its per-class response counts.
        cx.info.health_check = true;
        self.stats.request_total.inc();
        if self.failing.load(Ordering::Relaxed) {
            self.failed = true;
            self.stats.failed.inc();
            let reply = LocalReply::new(StatusCode::SERVICE_UNAVAILABLE, "", "health_check_failed")
                .with_flag(ResponseFlag::FailedLocalHealthCheck);
            FilterStatus::LocalReply(reply)
        } else {
            self.stats.ok.inc();
            FilterStatus::LocalReply(LocalReply::new(StatusCode::OK, "", "health_check_ok"))
        }
    }

    fn encode_headers(
        &mut self,
        parts: &mut http::response::Parts,
        _end_stream: bool,
        _cx: &mut StreamContext<'_>,
    ) -> EncodeStatus {
        // As Envoy: a health check's own response names the cluster; its 503 and,
        // while failing, every other response carry the immediate-fail mark.
        if self.health_check {
            parts.headers.insert(HEALTHCHECKED_CLUSTER, self.service_cluster.clone());
        }
        if self.failed || (!self.health_check && self.failing.load(Ordering::Relaxed)) {
            parts.headers.insert(IMMEDIATE_FAIL, HeaderValue::from_static("true"));
        }
        EncodeStatus::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::filters::http::test_util::{any_from_yaml, decode_then_encode, decode_with, info, request};

    fn factory(yaml: &str, store: &Store, failing: &Arc<AtomicBool>) -> Result<HealthCheckFactory, ConfigError> {
        let any = any_from_yaml(CONFIG_TYPE, yaml);
        let path = FieldPath::starting_at("http_filters[0].typed_config");
        common::check_supported(&any, &path)?;
        let cfg: HealthCheck = decode_any(&any, &path)?;
        HealthCheckFactory::new(&cfg, &path, store, "ingress", failing, "svc-cluster")
    }

    const HEALTHZ: &str = "{pass_through_mode: false, headers: [{name: ':path', string_match: {exact: /healthz}}]}";

    /// Decodes `uri`, then encodes the local reply or an upstream 200.
    fn run(f: &HealthCheckFactory, uri: &str) -> (FilterStatus, http::response::Parts) {
        decode_then_encode(f, None, &mut request("GET", uri, &[]))
    }

    #[test]
    fn answers_200_then_503_when_failing() {
        let store = Store::new();
        let failing = Arc::new(AtomicBool::new(false));
        let f = factory(HEALTHZ, &store, &failing).expect("valid");

        let (status, resp) = run(&f, "/healthz");
        let FilterStatus::LocalReply(reply) = status else { panic!("expected a local reply") };
        assert_eq!((reply.status, reply.details, reply.flag), (StatusCode::OK, "health_check_ok", None));
        assert!(reply.body.is_empty());
        assert_eq!(resp.headers[HEALTHCHECKED_CLUSTER], "svc-cluster");
        assert!(!resp.headers.contains_key(IMMEDIATE_FAIL));

        failing.store(true, Ordering::Relaxed);
        let (status, resp) = run(&f, "/healthz");
        let FilterStatus::LocalReply(reply) = status else { panic!("expected a local reply") };
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.details, "health_check_failed");
        assert_eq!(reply.flag, Some(ResponseFlag::FailedLocalHealthCheck));
        assert_eq!(resp.headers[HEALTHCHECKED_CLUSTER], "svc-cluster");
        assert_eq!(resp.headers[IMMEDIATE_FAIL], "true", "the filter's own 503 is marked");

        let v = |n: &str| store.counter_value(&format!("http.ingress.health_check.{n}"));
        assert_eq!((v("request_total"), v("ok"), v("failed")), (Some(2), Some(1), Some(1)));
        assert_eq!(v("cached_response"), Some(0));
    }

    #[test]
    fn health_checks_are_marked_in_the_stream_info() {
        let store = Store::new();
        let failing = Arc::new(AtomicBool::new(false));
        let f = factory(HEALTHZ, &store, &failing).expect("valid");
        for (uri, want) in [("/healthz", true), ("/other", false)] {
            let mut info = info();
            let _ = decode_with(f.create().as_mut(), &mut request("GET", uri, &[]), None, &mut info);
            assert_eq!(info.health_check, want, "{uri}");
        }
    }

    #[test]
    fn other_paths_pass_through() {
        let store = Store::new();
        let failing = Arc::new(AtomicBool::new(false));
        let f = factory(HEALTHZ, &store, &failing).expect("valid");
        for uri in ["/", "/healthz?full=1", "/healthz/x"] {
            let (status, resp) = run(&f, uri);
            assert!(matches!(status, FilterStatus::Continue), "{uri}");
            assert!(resp.headers.is_empty(), "{uri}");
        }
        // While failing, responses to other requests are marked.
        failing.store(true, Ordering::Relaxed);
        let (status, resp) = run(&f, "/other");
        assert!(matches!(status, FilterStatus::Continue));
        assert_eq!(resp.headers[IMMEDIATE_FAIL], "true");
        assert!(!resp.headers.contains_key(HEALTHCHECKED_CLUSTER));
        assert_eq!(store.counter_value("http.ingress.health_check.request_total"), Some(0));
    }

    #[test]
    fn config_errors_name_the_field() {
        let store = Store::new();
        let failing = Arc::new(AtomicBool::new(false));
        let e = factory("{pass_through_mode: true}", &store, &failing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "http_filters[0].typed_config.pass_through_mode: pass_through_mode: true is not supported by Courier"
        );
        let e = factory(
            "{pass_through_mode: false, cluster_min_healthy_percentages: {backend: {value: 50}}}",
            &store,
            &failing,
        )
        .unwrap_err();
        assert_eq!(e.path, "http_filters[0].typed_config.cluster_min_healthy_percentages");
        let e = factory(
            "{pass_through_mode: false, headers: [{name: ':path', string_match: {safe_regex: {regex: '(('}}}]}",
            &store,
            &failing,
        )
        .unwrap_err();
        assert_eq!(e.path, "http_filters[0].typed_config.headers[0].string_match.safe_regex.regex");
        // cache_time is accepted (it only matters in pass-through mode).
        assert!(factory("{pass_through_mode: false, cache_time: 5s}", &store, &failing).is_ok());
    }
}
