//! `envoy.config.core.v3.Http2ProtocolOptions`, read once on the main thread,
//! with Envoy 1.40's defaults (what its SETTINGS frame says when nothing is set:
//! 1024 concurrent streams, a 16 MiB stream window, a 24 MiB connection window,
//! a 4096-byte HPACK table). The same options serve the server codec (HCM) and
//! the client codec (a cluster's `HttpProtocolOptions`).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{Http2ProtocolOptions, KeepaliveSettings};

use crate::config::{self, ConfigError, FieldPath};

/// Envoy's defaults (`Http2::Utility::OptionsLimits` and the codec's settings).
pub const DEFAULT_HPACK_TABLE_SIZE: u32 = 4096;
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1024;
pub const DEFAULT_INITIAL_STREAM_WINDOW_SIZE: u32 = 16 * 1024 * 1024;
pub const DEFAULT_INITIAL_CONNECTION_WINDOW_SIZE: u32 = 24 * 1024 * 1024;
pub const DEFAULT_MAX_OUTBOUND_FRAMES: u32 = 10_000;
pub const DEFAULT_MAX_OUTBOUND_CONTROL_FRAMES: u32 = 1_000;
pub const DEFAULT_MAX_CONSECUTIVE_INBOUND_FRAMES_WITH_EMPTY_PAYLOAD: u32 = 1;
pub const DEFAULT_MAX_INBOUND_PRIORITY_FRAMES_PER_STREAM: u32 = 100;
pub const DEFAULT_MAX_INBOUND_WINDOW_UPDATE_FRAMES_PER_DATA_FRAME_SENT: u32 = 10;
/// `KeepaliveSettings.interval_jitter`'s default, in percent.
const DEFAULT_KEEPALIVE_JITTER_PERCENT: f64 = 15.0;

/// The HTTP/2 settings and limits of one codec.
#[derive(Debug, Clone, PartialEq)]
pub struct Http2Options {
    pub hpack_table_size: u32,
    pub max_concurrent_streams: u32,
    pub initial_stream_window_size: u32,
    pub initial_connection_window_size: u32,
    /// Extended CONNECT (RFC 8441), for WebSocket over HTTP/2.
    pub allow_connect: bool,
    pub max_outbound_frames: u32,
    pub max_outbound_control_frames: u32,
    pub max_consecutive_inbound_frames_with_empty_payload: u32,
    pub max_inbound_priority_frames_per_stream: u32,
    pub max_inbound_window_update_frames_per_data_frame_sent: u32,
    /// A malformed message resets its stream only (true) or the whole
    /// connection (false, Envoy's default for HTTP/2).
    pub stream_error_on_invalid_http_message: bool,
    pub keepalive: Option<Keepalive>,
}

/// `connection_keepalive`: PINGs on an idle connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Keepalive {
    /// Between PINGs (`None`: no periodic PING).
    pub interval: Option<Duration>,
    /// How long a PING may wait for its ACK before the connection is closed.
    pub timeout: Duration,
    /// Spread added to each interval, in percent of it.
    pub jitter_percent: f64,
    /// PING before reusing a connection idle this long (upstream only).
    pub connection_idle_interval: Option<Duration>,
}

impl Keepalive {
    /// When the next PING goes: the interval and a random part of its jitter
    /// (`None`: no periodic PING).
    pub fn next_ping(&self) -> Option<Duration> {
        let interval = self.interval?;
        let spread = interval.as_secs_f64() * self.jitter_percent.clamp(0.0, 100.0) / 100.0;
        let fraction = (crate::common::random::next_u64() % 1_000_000) as f64 / 1_000_000.0;
        Some(interval + Duration::from_secs_f64(spread * fraction))
    }
}

impl Default for Http2Options {
    fn default() -> Http2Options {
        Http2Options {
            hpack_table_size: DEFAULT_HPACK_TABLE_SIZE,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            initial_stream_window_size: DEFAULT_INITIAL_STREAM_WINDOW_SIZE,
            initial_connection_window_size: DEFAULT_INITIAL_CONNECTION_WINDOW_SIZE,
            allow_connect: false,
            max_outbound_frames: DEFAULT_MAX_OUTBOUND_FRAMES,
            max_outbound_control_frames: DEFAULT_MAX_OUTBOUND_CONTROL_FRAMES,
            max_consecutive_inbound_frames_with_empty_payload:
                DEFAULT_MAX_CONSECUTIVE_INBOUND_FRAMES_WITH_EMPTY_PAYLOAD,
            max_inbound_priority_frames_per_stream: DEFAULT_MAX_INBOUND_PRIORITY_FRAMES_PER_STREAM,
            max_inbound_window_update_frames_per_data_frame_sent:
                DEFAULT_MAX_INBOUND_WINDOW_UPDATE_FRAMES_PER_DATA_FRAME_SENT,
            stream_error_on_invalid_http_message: false,
            keepalive: None,
        }
    }
}

impl Http2Options {
    /// `path` points at the `Http2ProtocolOptions` message. The value ranges are
    /// the schema's (checked before this runs); what is left is Courier's.
    pub fn from_proto(p: &Http2ProtocolOptions, path: &FieldPath) -> Result<Http2Options, ConfigError> {
        let d = Http2Options::default();
        let or = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, default: u32| {
            v.as_ref().map_or(default, |v| v.value)
        };
        if !p.custom_settings_parameters.is_empty() {
            return Err(path
                .field_error("custom_settings_parameters", "custom SETTINGS parameters are not supported by Courier"));
        }
        if p.allow_metadata {
            return Err(path.field_error("allow_metadata", "METADATA frames are not supported by Courier"));
        }
        #[allow(deprecated)]
        let legacy_stream_error = p.stream_error_on_invalid_http_messaging;
        let keepalive = match &p.connection_keepalive {
            Some(k) => {
                let mut kp = path.clone();
                kp.push_field("connection_keepalive");
                Some(keepalive(k, &kp)?)
            }
            None => None,
        };
        Ok(Http2Options {
            hpack_table_size: or(&p.hpack_table_size, d.hpack_table_size),
            max_concurrent_streams: or(&p.max_concurrent_streams, d.max_concurrent_streams),
            initial_stream_window_size: or(&p.initial_stream_window_size, d.initial_stream_window_size),
            initial_connection_window_size: or(&p.initial_connection_window_size, d.initial_connection_window_size),
            allow_connect: p.allow_connect,
            max_outbound_frames: or(&p.max_outbound_frames, d.max_outbound_frames),
            max_outbound_control_frames: or(&p.max_outbound_control_frames, d.max_outbound_control_frames),
            max_consecutive_inbound_frames_with_empty_payload: or(
                &p.max_consecutive_inbound_frames_with_empty_payload,
                d.max_consecutive_inbound_frames_with_empty_payload,
            ),
            max_inbound_priority_frames_per_stream: or(
                &p.max_inbound_priority_frames_per_stream,
                d.max_inbound_priority_frames_per_stream,
            ),
            max_inbound_window_update_frames_per_data_frame_sent: or(
                &p.max_inbound_window_update_frames_per_data_frame_sent,
                d.max_inbound_window_update_frames_per_data_frame_sent,
            ),
            // The newer field wins over the deprecated one, as in Envoy.
            stream_error_on_invalid_http_message: p
                .override_stream_error_on_invalid_http_message
                .as_ref()
                .map_or(legacy_stream_error, |b| b.value),
            keepalive,
        })
    }
}

fn keepalive(k: &KeepaliveSettings, path: &FieldPath) -> Result<Keepalive, ConfigError> {
    let timeout = k.timeout.as_ref().map(config::duration).unwrap_or_default();
    if timeout.is_zero() {
        return Err(path.field_error("timeout", "must be at least 1ms"));
    }
    let nonzero = |d: &Option<envoy_types::pb::google::protobuf::Duration>| {
        d.as_ref().map(config::duration).filter(|d| !d.is_zero())
    };
    Ok(Keepalive {
        interval: nonzero(&k.interval),
        timeout,
        jitter_percent: k.interval_jitter.as_ref().map_or(DEFAULT_KEEPALIVE_JITTER_PERCENT, |p| p.value),
        connection_idle_interval: nonzero(&k.connection_idle_interval),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

    #[test]
    fn nothing_set_is_envoys_settings() {
        let o = Http2Options::from_proto(&Http2ProtocolOptions::default(), &FieldPath::starting_at("h2")).unwrap();
        assert_eq!(o, Http2Options::default());
        assert_eq!((o.max_concurrent_streams, o.initial_stream_window_size), (1024, 16 << 20));
        assert_eq!(o.initial_connection_window_size, 24 << 20);
    }

    #[test]
    fn set_fields_win_and_the_newer_stream_error_field_overrides() {
        #[allow(deprecated)]
        let p = Http2ProtocolOptions {
            max_concurrent_streams: Some(UInt32Value { value: 7 }),
            stream_error_on_invalid_http_messaging: true,
            override_stream_error_on_invalid_http_message: Some(BoolValue { value: false }),
            ..Default::default()
        };
        let o = Http2Options::from_proto(&p, &FieldPath::starting_at("h2")).unwrap();
        assert_eq!(o.max_concurrent_streams, 7);
        assert!(!o.stream_error_on_invalid_http_message);
    }

    #[test]
    fn keepalive_needs_a_timeout() {
        let p = Http2ProtocolOptions { connection_keepalive: Some(KeepaliveSettings::default()), ..Default::default() };
        let e = Http2Options::from_proto(&p, &FieldPath::starting_at("h2")).unwrap_err();
        assert!(e.to_string().contains("connection_keepalive.timeout"), "{e}");
    }
}
