//! A `HealthCheck`'s event log, as Envoy 1.40's `HealthCheckEventLoggerImpl`: the
//! deprecated `event_log_path` and each `event_logger` of type
//! `envoy.health_check.event_sinks.file` name a file that gets one JSON
//! `envoy.data.core.v3.HealthCheckEvent` per line when a host is ejected, added,
//! degraded or no longer degraded, when its first check fails, and, with
//! `always_log_health_check_failures` / `_success`, on every failed check / every
//! passing check that did not make the host healthy. The line is Envoy's protobuf
//! JSON with primitive fields always printed, fields in number order (so the
//! event's own object falls before or after `timestamp` by its number), the
//! timestamp in milliseconds (checked against Envoy 1.40).
//!
//! Sessions run on the main thread: a line is formatted there and handed to the
//! access log's writer thread for its file (`access_log::writer`), which never
//! blocks; files are opened when the cluster is built, so a bad path fails
//! start-up as in Envoy, and a file named by several loggers gets one writer.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::HealthCheck;
use envoy_types::pb::envoy::extensions::health_check::event_sinks::file::v3::HealthCheckEventFileSink;

use crate::access_log::{self, LogWriter};
use crate::config::bootstrap::decode_any;
use crate::config::{descriptor, ConfigError, FieldPath};
use crate::formatter::TimeFormat;
use crate::stats::Store;
use crate::upstream::host::Host;

/// `envoy.health_check.event_sinks.file`'s config type, the one event sink Courier has.
pub const FILE_SINK_TYPE: &str = "envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink";

/// Where a check's events go, and which optional ones are written.
#[derive(Debug)]
pub struct EventLog {
    writers: Vec<Arc<LogWriter>>,
    /// `always_log_health_check_failures`: every failed check, not only a first.
    pub always_log_failures: bool,
    /// `always_log_health_check_success`: every passing check that did not add the host.
    pub always_log_success: bool,
}

/// Envoy's `HealthCheckFailureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    Active,
    Passive,
    Network,
    NetworkTimeout,
}

impl FailureType {
    fn name(self) -> &'static str {
        match self {
            FailureType::Active => "ACTIVE",
            FailureType::Passive => "PASSIVE",
            FailureType::Network => "NETWORK",
            FailureType::NetworkTimeout => "NETWORK_TIMEOUT",
        }
    }
}

/// One `HealthCheckEvent`'s `event`. `http_status` is the status of the HTTP
/// check's answer that failed, 0 when there was none (or another checker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    EjectUnhealthy { failure: FailureType, http_status: u16 },
    AddHealthy { first_check: bool },
    Successful,
    Failure { failure: FailureType, first_check: bool, http_status: u16 },
    Degraded,
    NoLongerDegraded,
}

impl EventLog {
    /// The event log of `hc` (at `path`), if it has one; its files are opened
    /// here (writer stats under `filesystem.` in `store`).
    pub fn from_proto(hc: &HealthCheck, path: &FieldPath, store: &Store) -> Result<Option<EventLog>, ConfigError> {
        let mut writers = Vec::new();
        let mut open = |file: &str, at: &FieldPath, field: &str| -> Result<(), ConfigError> {
            let w = access_log::open_writer(file, store)
                .map_err(|e| at.field_error(field, format!("unable to open file '{file}': {e}")))?;
            writers.push(w);
            Ok(())
        };
        #[allow(deprecated)]
        if !hc.event_log_path.is_empty() {
            open(&hc.event_log_path, path, "event_log_path")?;
        }
        for (i, sink) in hc.event_logger.iter().enumerate() {
            let p = path.child(&format!("event_logger[{i}]"));
            let Some(any) = sink.typed_config.as_ref() else {
                return Err(p.field_error("typed_config", "value is required"));
            };
            let typed = p.child("typed_config");
            if descriptor::type_name(&any.type_url) != FILE_SINK_TYPE {
                let reason = format!("unsupported extension '{}' (not a health check event sink)", any.type_url);
                return Err(typed.field_error("@type", reason));
            }
            let file = decode_any::<HealthCheckEventFileSink>(any, &typed)?;
            open(&file.event_log_path, &typed, "event_log_path")?;
        }
        if writers.is_empty() {
            // Without a sink the `always_log_*` switches have nothing to act on,
            // as in Envoy, which builds no logger then.
            return Ok(None);
        }
        Ok(Some(EventLog {
            writers,
            always_log_failures: hc.always_log_health_check_failures,
            always_log_success: hc.always_log_health_check_success,
        }))
    }

    /// Writes `event` about `host` of cluster `cluster` found by a `checker`
    /// (`HTTP`, `TCP`, `GRPC`) check, now.
    pub fn log(&self, checker: &str, host: &Host, cluster: &str, event: Event) {
        let line = line(checker, host, cluster, event, SystemTime::now());
        for w in &self.writers {
            w.write(line.clone());
        }
    }
}

/// The JSON line (with its newline) of one event.
fn line(checker: &str, host: &Host, cluster: &str, event: Event, now: SystemTime) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{{\"health_checker_type\":\"{checker}\",\"host\":{{\"socket_address\":{{\"protocol\":\"TCP\",\
         \"address\":\"{}\",\"port_value\":{},\"resolver_name\":\"\",\"ipv4_compat\":false,\
         \"network_namespace_filepath\":\"\"}}}},\"cluster_name\":",
        host.address.ip(),
        host.address.port()
    );
    crate::common::json::escape_into(cluster, &mut out);
    // Fields in number order: eject (4), add (5), timestamp (6), failure (7),
    // degraded (8), no longer degraded (9), metadata (10), locality (11),
    // successful (12).
    match event {
        Event::EjectUnhealthy { failure, http_status } => {
            let _ = write!(
                out,
                ",\"eject_unhealthy_event\":{{\"failure_type\":\"{}\",\"http_status_code\":{http_status}}}",
                failure.name()
            );
        }
        Event::AddHealthy { first_check } => {
            let _ = write!(out, ",\"add_healthy_event\":{{\"first_check\":{first_check}}}");
        }
        _ => {}
    }
    out.push_str(",\"timestamp\":\"");
    write_timestamp(now, &mut out);
    out.push('"');
    match event {
        Event::Failure { failure, first_check, http_status } => {
            let _ = write!(
                out,
                ",\"health_check_failure_event\":{{\"failure_type\":\"{}\",\"first_check\":{first_check},\
                 \"http_status_code\":{http_status}}}",
                failure.name()
            );
        }
        Event::Degraded => out.push_str(",\"degraded_healthy_host\":{}"),
        Event::NoLongerDegraded => out.push_str(",\"no_longer_degraded_host\":{}"),
        _ => {}
    }
    if let Some(metadata) = host.metadata_json() {
        out.push_str(",\"metadata\":");
        out.push_str(&metadata);
    }
    out.push_str(",\"locality\":{\"region\":");
    let (region, zone, sub_zone) = match &host.locality {
        Some(l) => (l.region.as_str(), l.zone.as_str(), l.sub_zone.as_str()),
        None => ("", "", ""),
    };
    crate::common::json::escape_into(region, &mut out);
    out.push_str(",\"zone\":");
    crate::common::json::escape_into(zone, &mut out);
    out.push_str(",\"sub_zone\":");
    crate::common::json::escape_into(sub_zone, &mut out);
    out.push('}');
    if event == Event::Successful {
        out.push_str(",\"successful_health_check_event\":{}");
    }
    out.push_str("}\n");
    out
}

/// A `google.protobuf.Timestamp` as protobuf's JSON prints Envoy's (whole
/// milliseconds): `2026-12-07T23:57:51.859Z`, or without the fraction when it is 0.
fn write_timestamp(t: SystemTime, out: &mut String) {
    static SECONDS: OnceLock<Option<TimeFormat>> = OnceLock::new();
    if let Some(format) = SECONDS.get_or_init(|| TimeFormat::parse("%Y-%m-%dT%H:%M:%S").ok()) {
        format.write(t, out);
    }
    let millis = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_millis());
    if millis != 0 {
        out.push_str(&format!(".{millis:03}"));
    }
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::host::Locality;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn timestamps_print_milliseconds_unless_whole_seconds() {
        let mut s = String::new();
        write_timestamp(at(1_796_687_871_859), &mut s);
        assert_eq!(s, "2026-12-07T23:57:51.859Z");
        s.clear();
        write_timestamp(at(1_796_687_872_000), &mut s);
        assert_eq!(s, "2026-12-07T23:57:52Z");
        s.clear();
        write_timestamp(at(1_796_687_872_005), &mut s);
        assert_eq!(s, "2026-12-07T23:57:52.005Z");
    }

    #[test]
    fn lines_are_envoys_protobuf_json_in_field_number_order() {
        let host = Host::new("127.0.0.1:18081".parse().expect("addr"), String::new(), 1);
        let t = at(1_796_687_871_859);
        let head = "{\"health_checker_type\":\"HTTP\",\"host\":{\"socket_address\":{\"protocol\":\"TCP\",\
                    \"address\":\"127.0.0.1\",\"port_value\":18081,\"resolver_name\":\"\",\"ipv4_compat\":false,\
                    \"network_namespace_filepath\":\"\"}},\"cluster_name\":\"c\"";
        let ts = ",\"timestamp\":\"2026-12-07T23:57:51.859Z\"";
        let loc = ",\"locality\":{\"region\":\"\",\"zone\":\"\",\"sub_zone\":\"\"}";
        let eject = Event::EjectUnhealthy { failure: FailureType::Active, http_status: 503 };
        assert_eq!(
            line("HTTP", &host, "c", eject, t),
            format!("{head},\"eject_unhealthy_event\":{{\"failure_type\":\"ACTIVE\",\"http_status_code\":503}}{ts}{loc}}}\n")
        );
        let failure = Event::Failure { failure: FailureType::NetworkTimeout, first_check: true, http_status: 0 };
        assert_eq!(
            line("HTTP", &host, "c", failure, t),
            format!(
                "{head}{ts},\"health_check_failure_event\":{{\"failure_type\":\"NETWORK_TIMEOUT\",\
                 \"first_check\":true,\"http_status_code\":0}}{loc}}}\n"
            )
        );
        assert_eq!(
            line("HTTP", &host, "c", Event::Successful, t),
            format!("{head}{ts}{loc},\"successful_health_check_event\":{{}}}}\n")
        );
        let mut located = Host::new("127.0.0.1:18081".parse().expect("addr"), String::new(), 1);
        if let Some(h) = Arc::get_mut(&mut located) {
            h.locality = Some(Arc::new(Locality { region: "r1".into(), zone: "z1".into(), sub_zone: String::new() }));
        }
        located.set_metadata_json(Some("{\"filter_metadata\":{},\"typed_filter_metadata\":{}}".into()));
        assert_eq!(
            line("TCP", &located, "c", Event::Degraded, t),
            format!(
                "{}{ts},\"degraded_healthy_host\":{{}},\"metadata\":{{\"filter_metadata\":{{}},\
                 \"typed_filter_metadata\":{{}}}},\"locality\":{{\"region\":\"r1\",\"zone\":\"z1\",\"sub_zone\":\"\"}}}}\n",
                head.replacen("HTTP", "TCP", 1)
            )
        );
    }
}
