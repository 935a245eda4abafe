//! A cluster's `health_checks`, read once when the cluster is built: the timing
//! (`timeout`, the intervals and their jitter, the thresholds) and what one check
//! is (`http_health_check`, `tcp_health_check` or `grpc_health_check`), with
//! Envoy 1.40's defaults and its start-up errors. Fields Courier does not act on
//! are refused by the supported-fields walk before this runs.

use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::health_check::{
    payload, GrpcHealthCheck, HealthChecker, HttpHealthCheck, Payload, TcpHealthCheck,
};
use envoy_types::pb::envoy::config::core::v3::HealthCheck;
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use http::{HeaderName, HeaderValue, Method};

use super::event_log::EventLog;
use crate::config::{self, ConfigError, FieldPath};
use crate::stats::Store;

/// Envoy's `no_traffic_interval` when unset.
const DEFAULT_NO_TRAFFIC_INTERVAL: Duration = Duration::from_secs(60);
/// Envoy's `response_buffer_size` when unset: how much of an HTTP check's body
/// `receive` is matched against.
const DEFAULT_RESPONSE_BUFFER_SIZE: usize = 1024;

/// One `HealthCheck` of a cluster.
#[derive(Debug)]
pub struct HealthCheckConfig {
    pub timeout: Duration,
    pub interval: Duration,
    pub initial_jitter: Duration,
    pub interval_jitter: Duration,
    pub interval_jitter_percent: u32,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// `no_traffic_interval` (60 s) and `no_traffic_healthy_interval` (the former
    /// when unset): used until the cluster has seen traffic.
    pub no_traffic_interval: Duration,
    pub no_traffic_healthy_interval: Duration,
    /// `unhealthy_interval` (`interval` when unset), `unhealthy_edge_interval`
    /// (`unhealthy_interval`), `healthy_edge_interval` (`interval`).
    pub unhealthy_interval: Duration,
    pub unhealthy_edge_interval: Duration,
    pub healthy_edge_interval: Duration,
    /// `reuse_connection` (true when unset).
    pub reuse_connection: bool,
    pub check: Check,
    /// `event_log_path` / `event_logger`, when set (`event_log`).
    pub event_log: Option<EventLog>,
}

/// What one check does.
#[derive(Debug)]
pub enum Check {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Grpc(GrpcCheck),
}

impl Check {
    /// Envoy's `HealthCheckerType` name, as event logs show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Check::Http(_) => "HTTP",
            Check::Tcp(_) => "TCP",
            Check::Grpc(_) => "GRPC",
        }
    }
}

#[derive(Debug)]
pub struct HttpCheck {
    /// `host`: the `:authority` (else the endpoint's health-check hostname,
    /// else the cluster's name).
    pub host: String,
    pub path: String,
    pub method: Method,
    /// `receive`: byte strings the body's first `response_buffer_size` bytes
    /// must hold, in order.
    pub receive: Vec<Bytes>,
    pub response_buffer_size: usize,
    /// `request_headers_to_add` as (name, value, append).
    pub headers_to_add: Vec<(HeaderName, HeaderValue, bool)>,
    pub headers_to_remove: Vec<HeaderName>,
    /// `expected_statuses` (`[200, 201)` when none) and `retriable_statuses`, as
    /// half-open ranges.
    pub expected: Vec<(u64, u64)>,
    pub retriable: Vec<(u64, u64)>,
    /// `codec_client_type: HTTP2`.
    pub http2: bool,
}

#[derive(Debug)]
pub struct TcpCheck {
    /// `send`, written once connected (nothing when empty).
    pub send: Bytes,
    /// `receive`: what the answer must hold, in order (nothing awaited when empty).
    pub receive: Vec<Bytes>,
}

#[derive(Debug)]
pub struct GrpcCheck {
    pub service_name: String,
    /// `authority` (the HTTP check's `host` rules when empty).
    pub authority: String,
}

impl HealthCheckConfig {
    /// Reads `hc` (at `path`, e.g. `...clusters[0].health_checks[1]`), opening
    /// its event log's files (their stats in `store`).
    pub fn from_proto(hc: &HealthCheck, path: &FieldPath, store: &Store) -> Result<HealthCheckConfig, ConfigError> {
        // PGV has checked that these are set and above zero.
        let required = |d: &Option<envoy_types::pb::google::protobuf::Duration>, name: &str| {
            d.as_ref().map(config::duration).ok_or_else(|| path.field_error(name, "value is required"))
        };
        let timeout = required(&hc.timeout, "timeout")?;
        let interval = required(&hc.interval, "interval")?;
        let threshold = |v: Option<u32>, name: &str| v.ok_or_else(|| path.field_error(name, "value is required"));
        let unhealthy_threshold = threshold(hc.unhealthy_threshold.map(|v| v.value), "unhealthy_threshold")?;
        let healthy_threshold = threshold(hc.healthy_threshold.map(|v| v.value), "healthy_threshold")?;
        let no_traffic_interval = config::duration_or(&hc.no_traffic_interval, DEFAULT_NO_TRAFFIC_INTERVAL);
        let unhealthy_interval = config::duration_or(&hc.unhealthy_interval, interval);
        let check = match &hc.health_checker {
            Some(HealthChecker::HttpHealthCheck(h)) => Check::Http(http_check(h, &path.child("http_health_check"))?),
            Some(HealthChecker::TcpHealthCheck(t)) => Check::Tcp(tcp_check(t, &path.child("tcp_health_check"))?),
            Some(HealthChecker::GrpcHealthCheck(g)) => Check::Grpc(grpc_check(g)),
            // The supported-fields walk refuses the others by name.
            _ => {
                return Err(path
                    .error("a health checker is required: http_health_check, tcp_health_check or grpc_health_check"))
            }
        };
        Ok(HealthCheckConfig {
            timeout,
            interval,
            initial_jitter: config::duration_or(&hc.initial_jitter, Duration::ZERO),
            interval_jitter: config::duration_or(&hc.interval_jitter, Duration::ZERO),
            interval_jitter_percent: hc.interval_jitter_percent,
            unhealthy_threshold,
            healthy_threshold,
            no_traffic_interval,
            no_traffic_healthy_interval: config::duration_or(&hc.no_traffic_healthy_interval, no_traffic_interval),
            unhealthy_interval,
            unhealthy_edge_interval: config::duration_or(&hc.unhealthy_edge_interval, unhealthy_interval),
            healthy_edge_interval: config::duration_or(&hc.healthy_edge_interval, interval),
            reuse_connection: hc.reuse_connection.is_none_or(|v| v.value),
            check,
            event_log: EventLog::from_proto(hc, path, store)?,
        })
    }
}

fn http_check(h: &HttpHealthCheck, path: &FieldPath) -> Result<HttpCheck, ConfigError> {
    // `core.v3.RequestMethod`: METHOD_UNSPECIFIED is GET, CONNECT is refused by PGV.
    let method = match h.method {
        0 | 1 => Method::GET,
        2 => Method::HEAD,
        3 => Method::POST,
        4 => Method::PUT,
        5 => Method::DELETE,
        7 => Method::OPTIONS,
        8 => Method::TRACE,
        9 => Method::PATCH,
        _ => return Err(path.field_error("method", "not a method a health check can send")),
    };
    let receive = payloads(&h.receive, &path.child("receive"))?;
    let response_buffer_size = h.response_buffer_size.map_or(DEFAULT_RESPONSE_BUFFER_SIZE, |v| v.value as usize);
    let total: usize = receive.iter().map(Bytes::len).sum();
    if response_buffer_size != 0 && total > response_buffer_size {
        // Envoy's words.
        return Err(path.error(format!(
            "The expected response length '{total}' is over than http health response buffer size '{response_buffer_size}'"
        )));
    }
    let mut headers_to_add = Vec::with_capacity(h.request_headers_to_add.len());
    for (i, o) in h.request_headers_to_add.iter().enumerate() {
        let p = path.child(&format!("request_headers_to_add[{i}]"));
        let Some(header) = o.header.as_ref() else { continue };
        // As Envoy's header parser: an empty value is not added unless kept.
        if header.value.is_empty() && !o.keep_empty_value {
            continue;
        }
        let name = HeaderName::from_bytes(header.key.as_bytes())
            .map_err(|_| p.field_error("header.key", "not a valid header name"))?;
        if header.value.contains('%') {
            return Err(p.field_error(
                "header.value",
                "Courier does not evaluate %...% formatters in health check request headers",
            ));
        }
        let value = HeaderValue::from_str(&header.value)
            .map_err(|_| p.field_error("header.value", "not a valid header value"))?;
        // `append_action` APPEND_IF_EXISTS_OR_ADD (0) appends, unless the
        // deprecated `append` says false; the others replace.
        #[allow(deprecated)]
        let append = match o.append {
            Some(a) => a.value,
            None => o.append_action == 0,
        };
        headers_to_add.push((name, value, append));
    }
    let mut headers_to_remove = Vec::with_capacity(h.request_headers_to_remove.len());
    for (i, name) in h.request_headers_to_remove.iter().enumerate() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| path.field_error(&format!("request_headers_to_remove[{i}]"), "not a valid header name"))?;
        headers_to_remove.push(name);
    }
    let mut expected = ranges(&h.expected_statuses, "expected")?;
    if expected.is_empty() {
        expected.push((200, 201));
    }
    let http2 = match h.codec_client_type {
        0 => false,
        1 => true,
        _ => return Err(path.field_error("codec_client_type", "only HTTP1 and HTTP2 are supported by Courier")),
    };
    Ok(HttpCheck {
        host: h.host.clone(),
        path: h.path.clone(),
        method,
        receive,
        response_buffer_size,
        headers_to_add,
        headers_to_remove,
        expected,
        retriable: ranges(&h.retriable_statuses, "retriable")?,
        http2,
    })
}

/// Status ranges, checked with Envoy's words.
fn ranges(list: &[Int64Range], kind: &str) -> Result<Vec<(u64, u64)>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let (start, end) = (r.start as u64, r.end as u64);
        if start >= end {
            return Err(ConfigError::new(
                "",
                format!(
                    "Invalid http {kind} status range: expecting start < end, but found start={start} and end={end}"
                ),
            ));
        }
        if start < 100 {
            return Err(ConfigError::new(
                "",
                format!("Invalid http {kind} status range: expecting start >= 100, but found start={start}"),
            ));
        }
        if end > 600 {
            return Err(ConfigError::new(
                "",
                format!("Invalid http {kind} status range: expecting end <= 600, but found end={end}"),
            ));
        }
        out.push((start, end));
    }
    Ok(out)
}

fn tcp_check(t: &TcpHealthCheck, path: &FieldPath) -> Result<TcpCheck, ConfigError> {
    let send = match &t.send {
        Some(p) => payload_bytes(p, &path.child("send"))?,
        None => Bytes::new(),
    };
    Ok(TcpCheck { send, receive: payloads(&t.receive, &path.child("receive"))? })
}

fn grpc_check(g: &GrpcHealthCheck) -> GrpcCheck {
    GrpcCheck { service_name: g.service_name.clone(), authority: g.authority.clone() }
}

fn payloads(list: &[Payload], path: &FieldPath) -> Result<Vec<Bytes>, ConfigError> {
    list.iter().enumerate().map(|(i, p)| payload_bytes(p, &FieldPath::starting_at(&format!("{path}[{i}]")))).collect()
}

/// A `Payload`: `text` is hex (Envoy's words when it is not), `binary` as is.
fn payload_bytes(p: &Payload, path: &FieldPath) -> Result<Bytes, ConfigError> {
    match &p.payload {
        Some(payload::Payload::Text(hex)) => decode_hex(hex)
            .map(Bytes::from)
            .ok_or_else(|| path.field_error("text", format!("invalid hex string '{hex}'"))),
        Some(payload::Payload::Binary(b)) => Ok(Bytes::from(b.clone())),
        None => Ok(Bytes::new()),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    digits.chunks(2).map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)).collect()
}

/// Envoy's `PayloadMatcher::match`: every segment of `expected` is found in
/// `data`, each after the one before it.
pub fn payload_matches(expected: &[Bytes], data: &[u8]) -> bool {
    let mut from = 0;
    for segment in expected.iter().filter(|s| !s.is_empty()) {
        match data[from..].windows(segment.len()).position(|w| w == segment.as_ref()) {
            Some(at) => from += at + segment.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_payloads_and_ordered_matching() {
        assert_eq!(decode_hex("50494e47"), Some(b"PING".to_vec()));
        assert_eq!(decode_hex("5"), None);
        assert_eq!(decode_hex("zz"), None);
        let want = [Bytes::from_static(b"PO"), Bytes::from_static(b"NG")];
        assert!(payload_matches(&want, b"xxPONGxx"));
        assert!(!payload_matches(&want, b"NGPO"));
        assert!(!payload_matches(&want, b"PO"));
        assert!(payload_matches(&[], b""));
    }

    #[test]
    fn binary_and_text_payloads_match_alike() {
        let path = FieldPath::starting_at("p");
        let text = Payload { payload: Some(payload::Payload::Text("504f4e47".into())) };
        let binary = Payload { payload: Some(payload::Payload::Binary(b"PONG".to_vec())) };
        assert_eq!(payload_bytes(&text, &path), payload_bytes(&binary, &path));
        let bad = Payload { payload: Some(payload::Payload::Text("xyz".into())) };
        let e = payload_bytes(&bad, &path).expect_err("odd, not hex");
        assert!(e.to_string().contains("p.text"), "{e}");
    }
}
