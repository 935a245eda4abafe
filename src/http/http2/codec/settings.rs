//! RFC 9113 §6.5: the peer's SETTINGS as the codec applies them (each value
//! checked with the error the RFC names: ENABLE_PUSH other than 0 or 1 and
//! MAX_FRAME_SIZE out of bounds are PROTOCOL_ERROR, INITIAL_WINDOW_SIZE above
//! 2^31-1 is FLOW_CONTROL_ERROR; unknown identifiers are ignored), and the
//! server's own SETTINGS from `Http2Options` as Envoy announces them.

use bytes::{BufMut, BytesMut};

use super::error_code::{ConnectionError, ErrorCode};
use super::frame::{DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE};
use crate::http::http2::options::Http2Options;

/// Setting identifiers (§6.5.2, RFC 8441 §3).
pub mod id {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// The largest flow-control window (§6.9.1).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;
/// Every window's size before SETTINGS say otherwise (§6.9.2).
pub const DEFAULT_WINDOW_SIZE: u32 = 65_535;

/// The peer's settings in force, initially the RFC's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    /// For the HPACK encoder's dynamic table.
    pub header_table_size: u32,
    pub enable_push: bool,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: bool,
}

impl Default for PeerSettings {
    fn default() -> PeerSettings {
        PeerSettings {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: DEFAULT_WINDOW_SIZE,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: None,
            enable_connect_protocol: false,
        }
    }
}

impl PeerSettings {
    /// Applies a SETTINGS frame's entries in order (§6.5.3: a later value of
    /// one identifier wins).
    pub fn apply(&mut self, params: &[u8]) -> Result<(), ConnectionError> {
        for entry in params.chunks_exact(6) {
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match u16::from_be_bytes([entry[0], entry[1]]) {
                id::HEADER_TABLE_SIZE => self.header_table_size = value,
                id::ENABLE_PUSH => {
                    self.enable_push = match value {
                        0 => false,
                        1 => true,
                        _ => {
                            return Err(ConnectionError::silent(
                                ErrorCode::PROTOCOL_ERROR,
                                "SETTINGS_ENABLE_PUSH not 0 or 1",
                            ))
                        }
                    }
                }
                id::MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
                id::INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW_SIZE {
                        return Err(ConnectionError::silent(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    self.initial_window_size = value;
                }
                id::MAX_FRAME_SIZE => {
                    if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                        return Err(ConnectionError::silent(
                            ErrorCode::PROTOCOL_ERROR,
                            "SETTINGS_MAX_FRAME_SIZE out of bounds",
                        ));
                    }
                    self.max_frame_size = value;
                }
                id::MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
                id::ENABLE_CONNECT_PROTOCOL => {
                    self.enable_connect_protocol = match value {
                        0 => false,
                        1 => true,
                        _ => {
                            return Err(ConnectionError::silent(
                                ErrorCode::PROTOCOL_ERROR,
                                "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1",
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The entries of the server's first SETTINGS frame, as Envoy 1.40 sends them
/// (checked with tests/h2conformance case 3.4/1 against Envoy: HEADER_TABLE_SIZE,
/// MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE and ENABLE_CONNECT_PROTOCOL, the
/// last 0 unless `allow_connect`).
pub fn server_settings(options: &Http2Options) -> BytesMut {
    let mut out = BytesMut::new();
    let mut put = |id: u16, value: u32| {
        out.put_u16(id);
        out.put_u32(value);
    };
    put(id::HEADER_TABLE_SIZE, options.hpack_table_size);
    put(id::MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
    put(id::INITIAL_WINDOW_SIZE, options.initial_stream_window_size.min(MAX_WINDOW_SIZE));
    put(id::ENABLE_CONNECT_PROTOCOL, u32::from(options.allow_connect));
    out
}
