//! Envoy's inbound frame limits (`Http2::ProtocolConstraints::trackInboundFrame`)
//! and its premature-reset rule, as plain counters: the formulas live here once,
//! and Courier's own `codec` and the connection loop feed them.
//! Neither reads a clock: whether a reset came within a second of its stream's
//! start is the caller's to say, so the counters stay small, `Copy` and testable
//! without time.

use super::options::Http2Options;
use super::violation::Violation;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;

/// Inbound frames counted against Envoy's `max_consecutive_inbound_frames_with_empty_payload`,
/// `max_inbound_priority_frames_per_stream` and
/// `max_inbound_window_update_frames_per_data_frame_sent`.
#[derive(Debug, Clone, Copy)]
pub struct InboundFrameLimits {
    max_empty: u32,
    max_priority_per_stream: u64,
    max_window_updates_per_data_frame: u64,
    consecutive_empty: u32,
    priority_frames: u64,
    window_update_frames: u64,
    opened_streams: u64,
    data_frames_sent: u64,
}

impl InboundFrameLimits {
    pub fn new(options: &Http2Options) -> InboundFrameLimits {
        InboundFrameLimits {
            max_empty: options.max_consecutive_inbound_frames_with_empty_payload,
            max_priority_per_stream: u64::from(options.max_inbound_priority_frames_per_stream),
            max_window_updates_per_data_frame: u64::from(options.max_inbound_window_update_frames_per_data_frame_sent),
            consecutive_empty: 0,
            priority_frames: 0,
            window_update_frames: 0,
            opened_streams: 0,
            data_frames_sent: 0,
        }
    }

    /// An inbound frame, by its header; `opens_stream` when it is the HEADERS
    /// that begins a stream.
    pub fn frame(&mut self, kind: u8, flags: u8, length: u32, opens_stream: bool) -> Result<(), Violation> {
        if opens_stream {
            self.opened_streams += 1;
        }
        match kind {
            DATA | HEADERS | CONTINUATION => {
                let empty = length == 0 && (kind == CONTINUATION || flags & END_STREAM == 0);
                self.consecutive_empty = if empty { self.consecutive_empty + 1 } else { 0 };
            }
            PRIORITY => self.priority_frames += 1,
            WINDOW_UPDATE => self.window_update_frames += 1,
            _ => {}
        }
        if self.consecutive_empty > self.max_empty {
            return Err(Violation::EmptyFrames);
        }
        if self.priority_frames > self.max_priority_per_stream * (1 + self.opened_streams) {
            return Err(Violation::PriorityFrames);
        }
        let allowed = 5 + 2 * (self.opened_streams + self.max_window_updates_per_data_frame * self.data_frames_sent);
        if self.window_update_frames > allowed {
            return Err(Violation::WindowUpdateFrames);
        }
        Ok(())
    }

    /// A DATA frame was sent (each allows more inbound WINDOW_UPDATEs).
    pub fn data_frame_sent(&mut self) {
        self.data_frames_sent += 1;
    }

    pub fn opened_streams(&self) -> u64 {
        self.opened_streams
    }
}

/// Envoy's premature-reset rule (`overload.premature_reset_*` runtime defaults):
/// a stream reset within `PREMATURE_RESET_LIFETIME` of its start is premature...
pub const PREMATURE_RESET_LIFETIME: std::time::Duration = std::time::Duration::from_secs(1);
/// ...and past this many closed streams, a connection with at least half of them
/// premature is closed; before it, half this many premature resets close it.
pub const PREMATURE_RESET_STREAM_COUNT: u64 = 500;

/// Streams closed on a connection and how many of them were reset prematurely.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrematureResets {
    closed: u64,
    premature: u64,
}

impl PrematureResets {
    /// A stream ended; `premature` when it was reset (either way) within
    /// `PREMATURE_RESET_LIFETIME` of its start.
    pub fn stream_closed(&mut self, premature: bool) -> Result<(), Violation> {
        self.closed += 1;
        if premature {
            self.premature += 1;
        }
        let over = if self.closed < PREMATURE_RESET_STREAM_COUNT {
            self.premature >= PREMATURE_RESET_STREAM_COUNT / 2
        } else {
            self.premature * 2 >= self.closed
        };
        if over {
            return Err(Violation::PrematureResets);
        }
        Ok(())
    }
}
