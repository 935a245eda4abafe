//! Envoy's `RetryPolicy` (route or virtual host level): when to retry, how often,
//! and how long to back off.
//!
//! `retry_on` is Envoy's comma-separated list of conditions, shared with the
//! `x-envoy-retry-on` / `x-envoy-retry-grpc-on` headers. Unlike Envoy, which drops
//! words it does not know, Courier rejects them so a typo does not silently disable
//! retries. The router decides what a reset or a connect failure is; this module
//! answers the response questions (`retriable_response`).

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate;
use envoy_types::pb::envoy::config::route::v3::RetryPolicy as RetryPolicyProto;

use crate::config::{duration, ConfigError, FieldPath};

/// A set of retry conditions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const NONE: RetryOn = RetryOn(0);
    /// `5xx`: any 5xx response, or no response at all (reset, connect failure).
    pub const FIVE_XX: RetryOn = RetryOn(1 << 0);
    /// `gateway-error`: 502, 503 or 504.
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    /// `reset`: the upstream reset or disconnected without a response.
    pub const RESET: RetryOn = RetryOn(1 << 2);
    /// `connect-failure`: the upstream connection could not be made.
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    /// `retriable-4xx`: 409.
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    /// `refused-stream`: an HTTP/2 REFUSED_STREAM reset.
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    /// `retriable-status-codes`: the policy's `retriable_status_codes`.
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    /// `retriable-headers`: response headers match `retriable_headers`.
    pub const RETRIABLE_HEADERS: RetryOn = RetryOn(1 << 7);
    /// `reset-before-request`: a reset before the request was fully sent.
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 8);
    /// `envoy-ratelimited`: the response carries `x-envoy-ratelimited`.
    pub const ENVOY_RATELIMITED: RetryOn = RetryOn(1 << 9);
    /// `http3-post-connect-failure`.
    pub const HTTP3_POST_CONNECT_FAILURE: RetryOn = RetryOn(1 << 10);
    /// gRPC status `cancelled`.
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 11);
    /// gRPC status `deadline-exceeded`.
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 12);
    /// gRPC status `resource-exhausted`.
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 13);
    /// gRPC status `unavailable`.
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 14);
    /// gRPC status `internal`.
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 15);

    /// Every condition with its `retry_on` word, in Envoy's documentation order.
    pub const NAMES: [(RetryOn, &'static str); 16] = [
        (RetryOn::FIVE_XX, "5xx"),
        (RetryOn::GATEWAY_ERROR, "gateway-error"),
        (RetryOn::RESET, "reset"),
        (RetryOn::RESET_BEFORE_REQUEST, "reset-before-request"),
        (RetryOn::CONNECT_FAILURE, "connect-failure"),
        (RetryOn::ENVOY_RATELIMITED, "envoy-ratelimited"),
        (RetryOn::RETRIABLE_4XX, "retriable-4xx"),
        (RetryOn::REFUSED_STREAM, "refused-stream"),
        (RetryOn::RETRIABLE_STATUS_CODES, "retriable-status-codes"),
        (RetryOn::RETRIABLE_HEADERS, "retriable-headers"),
        (RetryOn::HTTP3_POST_CONNECT_FAILURE, "http3-post-connect-failure"),
        (RetryOn::GRPC_CANCELLED, "cancelled"),
        (RetryOn::GRPC_DEADLINE_EXCEEDED, "deadline-exceeded"),
        (RetryOn::GRPC_INTERNAL, "internal"),
        (RetryOn::GRPC_RESOURCE_EXHAUSTED, "resource-exhausted"),
        (RetryOn::GRPC_UNAVAILABLE, "unavailable"),
    ];

    /// Parses a comma-separated `retry_on` list (blanks around words ignored, empty
    /// items skipped); `Err` names the first unknown word.
    pub fn parse(list: &str) -> Result<RetryOn, String> {
        let mut on = RetryOn::NONE;
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (flag, _) = RetryOn::NAMES
                .iter()
                .find(|(_, name)| *name == word)
                .ok_or_else(|| format!("unknown retry condition '{word}'"))?;
            on |= *flag;
        }
        Ok(on)
    }

    /// True when every condition of `other` is in `self`.
    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any condition of `other` is in `self`.
    pub fn intersects(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for RetryOn {
    type Output = RetryOn;
    fn bitor(self, rhs: RetryOn) -> RetryOn {
        RetryOn(self.0 | rhs.0)
    }
}

impl BitOrAssign for RetryOn {
    fn bitor_assign(&mut self, rhs: RetryOn) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for RetryOn {
    /// The `retry_on` words, e.g. `RetryOn(5xx,reset)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            RetryOn::NAMES.iter().filter(|(flag, _)| self.contains(*flag)).map(|(_, n)| *n).collect();
        write!(f, "RetryOn({})", names.join(","))
    }
}

/// Envoy's default back-off base interval.
pub const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);

/// A compiled retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Retries after the first attempt (default 1).
    pub num_retries: u32,
    /// Timeout of each attempt; `None`: only the route timeout applies.
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    /// Back-off base (default 25ms; at least 1ms).
    pub base_interval: Duration,
    /// Back-off cap (default 10 × `base_interval`).
    pub max_interval: Duration,
    /// Whether the route sets `retry_back_off`; without it the runtime's
    /// `upstream.base_retry_backoff_ms` may change the base (and so the cap).
    pub back_off_configured: bool,
    /// `envoy.retry_host_predicates.previous_hosts`: a retry avoids the hosts
    /// already tried, picking again up to `host_selection_retry_max_attempts`
    /// times (default 1) before it takes the last pick anyway.
    pub host_reselections: Option<u32>,
}

/// `retry_host_predicate`'s `previous_hosts`: its config type, which has no field.
pub const PREVIOUS_HOSTS_TYPE: &str = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

impl RetryPolicy {
    /// Compiles `rp`; `path` points at the `retry_policy` field.
    pub fn from_proto(rp: &RetryPolicyProto, path: &FieldPath) -> Result<RetryPolicy, ConfigError> {
        let retry_on = RetryOn::parse(&rp.retry_on).map_err(|e| path.field_error("retry_on", e))?;
        let mut retriable_status_codes = Vec::with_capacity(rp.retriable_status_codes.len());
        for (i, code) in rp.retriable_status_codes.iter().enumerate() {
            let code = u16::try_from(*code).ok().filter(|c| (100..=599).contains(c)).ok_or_else(|| {
                let mut p = path.clone();
                p.push_field("retriable_status_codes");
                p.push_index(i);
                p.error(format!("{code} is not an HTTP status code"))
            })?;
            retriable_status_codes.push(code);
        }
        let (base_interval, max_interval) = match &rp.retry_back_off {
            None => (DEFAULT_BASE_INTERVAL, DEFAULT_BASE_INTERVAL * 10),
            Some(b) => {
                let mut p = path.clone();
                p.push_field("retry_back_off");
                let base = b
                    .base_interval
                    .as_ref()
                    .map(duration)
                    .ok_or_else(|| p.field_error("base_interval", "value is required"))?;
                if base.is_zero() {
                    return Err(p.field_error("base_interval", "value must be greater than 0s"));
                }
                let base = base.max(Duration::from_millis(1));
                let max = match &b.max_interval {
                    None => base * 10,
                    Some(m) => {
                        let m = duration(m).max(Duration::from_millis(1));
                        if m < base {
                            return Err(p.field_error(
                                "max_interval",
                                "retry_policy.max_interval must greater than or equal to the base_interval",
                            ));
                        }
                        m
                    }
                };
                (base, max)
            }
        };
        Ok(RetryPolicy {
            retry_on,
            num_retries: rp.num_retries.as_ref().map_or(1, |n| n.value),
            per_try_timeout: rp.per_try_timeout.as_ref().map(duration).filter(|d| !d.is_zero()),
            retriable_status_codes,
            base_interval,
            max_interval,
            back_off_configured: rp.retry_back_off.is_some(),
            host_reselections: Self::host_reselections(rp, path)?,
        })
    }

    /// Whether `host`, picked for a try, should be picked again: one of the
    /// hosts `tried` before, under `previous_hosts`.
    pub fn reselect(&self, tried: &[std::net::SocketAddr], host: std::net::SocketAddr) -> bool {
        self.host_reselections.is_some() && tried.contains(&host)
    }

    /// `retry_host_predicate` (only `previous_hosts`: the config checker refuses
    /// other predicates' types) and `host_selection_retry_max_attempts`.
    fn host_reselections(rp: &RetryPolicyProto, path: &FieldPath) -> Result<Option<u32>, ConfigError> {
        for (i, predicate) in rp.retry_host_predicate.iter().enumerate() {
            let typed = predicate.config_type.as_ref().map(|retry_host_predicate::ConfigType::TypedConfig(any)| any);
            if typed.is_none_or(|any| crate::config::descriptor::type_name(&any.type_url) != PREVIOUS_HOSTS_TYPE) {
                let mut p = path.clone();
                p.push_field("retry_host_predicate");
                p.push_index(i);
                return Err(p.field_error("typed_config", "Courier has the previous_hosts predicate only"));
            }
        }
        if rp.retry_host_predicate.is_empty() {
            return Ok(None);
        }
        let attempts = rp.host_selection_retry_max_attempts.clamp(1, i64::from(u32::MAX));
        Ok(Some(u32::try_from(attempts).unwrap_or(1)))
    }

    /// Whether a response with `status` may be retried under this policy:
    /// `5xx` any 5xx, `gateway-error` 502/503/504, `retriable-4xx` 409,
    /// `retriable-status-codes` the listed codes.
    pub fn retriable_status(&self, status: u16) -> bool {
        (self.retry_on.contains(RetryOn::FIVE_XX) && (500..=599).contains(&status))
            || (self.retry_on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (self.retry_on.contains(RetryOn::RETRIABLE_4XX) && status == 409)
            || (self.retry_on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                && self.retriable_status_codes.contains(&status))
    }

    /// Whether a response may be retried, as Envoy's `wouldRetryFromHeaders`: one
    /// carrying `x-envoy-ratelimited` (from an upstream Envoy) only under
    /// `envoy-ratelimited`, any other by its status (`retriable_status`).
    pub fn retriable_response(&self, status: u16, headers: &http::HeaderMap) -> bool {
        if headers.contains_key("x-envoy-ratelimited") {
            return self.retry_on.contains(RetryOn::ENVOY_RATELIMITED);
        }
        self.retriable_status(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::test_util::{route_config, try_route_config};

    fn policy(yaml: &str) -> Result<RetryPolicy, ConfigError> {
        let rc = try_route_config(&format!(
            "virtual_hosts: [{{name: v, domains: ['*'], routes: [{{match: {{prefix: /}}, route: {{cluster: c, retry_policy: {yaml}}}}}]}}]"
        ))?;
        let rp = match &rc.virtual_hosts[0].routes[0].action {
            Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(a)) => a.retry_policy.clone(),
            _ => None,
        };
        RetryPolicy::from_proto(&rp.expect("retry policy"), &FieldPath::starting_at("rp"))
    }

    #[test]
    fn parses_retry_on_and_defaults() {
        let p = policy("{retry_on: '5xx, gateway-error,reset,connect-failure,retriable-4xx,refused-stream,retriable-status-codes'}")
            .expect("valid");
        for flag in [
            RetryOn::FIVE_XX,
            RetryOn::GATEWAY_ERROR,
            RetryOn::RESET,
            RetryOn::CONNECT_FAILURE,
            RetryOn::RETRIABLE_4XX,
            RetryOn::REFUSED_STREAM,
            RetryOn::RETRIABLE_STATUS_CODES,
        ] {
            assert!(p.retry_on.contains(flag), "{flag:?}");
        }
        assert!(!p.retry_on.contains(RetryOn::RESET_BEFORE_REQUEST));
        assert_eq!(p.num_retries, 1);
        assert_eq!(p.per_try_timeout, None);
        assert_eq!(p.base_interval, Duration::from_millis(25));
        assert_eq!(p.max_interval, Duration::from_millis(250));
        let grpc =
            policy("{retry_on: 'cancelled,deadline-exceeded,internal,resource-exhausted,unavailable'}").expect("valid");
        assert!(grpc.retry_on.contains(RetryOn::GRPC_UNAVAILABLE | RetryOn::GRPC_CANCELLED));
        assert_eq!(format!("{:?}", RetryOn::FIVE_XX | RetryOn::RESET), "RetryOn(5xx,reset)");
    }

    #[test]
    fn parses_every_field() {
        let p = policy(
            "{retry_on: retriable-status-codes, num_retries: 3, per_try_timeout: 0.5s, \
             retriable_status_codes: [418, 503], retry_back_off: {base_interval: 0.1s, max_interval: 2s}}",
        )
        .expect("valid");
        assert_eq!(p.num_retries, 3);
        assert_eq!(p.per_try_timeout, Some(Duration::from_millis(500)));
        assert_eq!(p.retriable_status_codes, vec![418, 503]);
        assert_eq!(p.base_interval, Duration::from_millis(100));
        assert_eq!(p.max_interval, Duration::from_secs(2));
        let p = policy("{retry_on: 5xx, retry_back_off: {base_interval: 0.0001s}}").expect("valid");
        assert_eq!(p.base_interval, Duration::from_millis(1), "rounded up to 1ms");
        assert_eq!(p.max_interval, Duration::from_millis(10));
    }

    #[test]
    fn retriable_status_follows_envoy() {
        let p = |on: &str| policy(&format!("{{retry_on: '{on}', retriable_status_codes: [418]}}")).expect("valid");
        let five = p("5xx");
        assert!(five.retriable_status(500) && five.retriable_status(503) && five.retriable_status(599));
        assert!(!five.retriable_status(409) && !five.retriable_status(200));
        let gw = p("gateway-error");
        assert!(gw.retriable_status(502) && gw.retriable_status(503) && gw.retriable_status(504));
        assert!(!gw.retriable_status(500));
        let r4 = p("retriable-4xx");
        assert!(r4.retriable_status(409) && !r4.retriable_status(404));
        let codes = p("retriable-status-codes");
        assert!(codes.retriable_status(418) && !codes.retriable_status(503));
        assert!(!p("reset").retriable_status(418), "codes need retriable-status-codes");
    }

    #[test]
    fn rate_limited_responses_need_envoy_ratelimited() {
        let p = |on: &str| policy(&format!("{{retry_on: '{on}'}}")).expect("valid");
        let mut limited = http::HeaderMap::new();
        limited.insert("x-envoy-ratelimited", http::HeaderValue::from_static("true"));
        let plain = http::HeaderMap::new();
        assert!(p("5xx").retriable_response(503, &plain));
        assert!(!p("5xx").retriable_response(503, &limited));
        assert!(p("envoy-ratelimited").retriable_response(429, &limited));
        assert!(!p("envoy-ratelimited").retriable_response(429, &plain));
    }

    #[test]
    fn errors_have_paths() {
        let e = policy("{retry_on: '5xx,bogus'}").unwrap_err();
        assert_eq!(e.to_string(), "rp.retry_on: unknown retry condition 'bogus'");
        let e = policy("{retry_on: 5xx, retry_back_off: {base_interval: 1s, max_interval: 0.5s}}").unwrap_err();
        assert_eq!(e.path, "rp.retry_back_off.max_interval");
        let e = policy("{retry_on: 5xx, retriable_status_codes: [1000]}").unwrap_err();
        assert_eq!(e.path, "rp.retriable_status_codes[0]");
        // Envoy's own rules (validate) reject a missing base interval first.
        assert!(try_route_config(
            "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, \
             route: {cluster: c, retry_policy: {retry_back_off: {max_interval: 1s}}}}]}]"
        )
        .is_err());
        let _ = route_config("virtual_hosts: []");
    }
}
