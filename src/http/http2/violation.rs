//! Why an HTTP/2 connection must end for Envoy's abuse limits: the verdicts of
//! Courier's own `codec` (the downstream data path), each counting its `http2.*`
//! stat in one place.

use super::stats::Http2CodecStats;

/// Why a connection must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    EmptyFrames,
    PriorityFrames,
    WindowUpdateFrames,
    /// A PRIORITY, RST_STREAM, SETTINGS, PING or WINDOW_UPDATE frame of a length
    /// its type does not allow (RFC 9113 §6).
    FrameSize,
    /// The client's first frame is not SETTINGS (RFC 9113 §3.4).
    NoSettingsFirst,
    /// A header block whose encoded size alone is over `max_request_headers_kb`
    /// (CONTINUATION flood, CVE-2024-27919).
    HeaderBlockTooLarge,
    /// A header block in more CONTINUATION frames than Envoy allows (CVE-2024-27919).
    ContinuationFrames,
    /// Envoy's premature-reset rule: too many streams reset right after they began.
    PrematureResets,
    /// More frames waiting to be written than `max_outbound_frames`
    /// (`http2.outbound_flood`).
    OutboundFrames,
    /// More PING ACK, SETTINGS ACK and RST_STREAM frames waiting to be written
    /// than `max_outbound_control_frames` (`http2.outbound_control_flood`).
    OutboundControlFrames,
}

impl Violation {
    /// The GOAWAY error code.
    pub fn reason(self) -> h2::Reason {
        match self {
            Violation::FrameSize => h2::Reason::FRAME_SIZE_ERROR,
            Violation::NoSettingsFirst => h2::Reason::PROTOCOL_ERROR,
            _ => h2::Reason::ENHANCE_YOUR_CALM,
        }
    }

    /// A flood (Envoy's limits), as opposed to a frame the RFC forbids.
    pub fn is_flood(self) -> bool {
        !matches!(self, Violation::FrameSize | Violation::NoSettingsFirst)
    }

    /// Counts the `http2.*` stat Envoy counts the verdict under, if any (the
    /// premature-reset rule's is the connection manager's).
    pub fn count(self, stats: &Http2CodecStats) {
        match self {
            Violation::EmptyFrames => stats.inbound_empty_frames_flood.inc(),
            Violation::PriorityFrames => stats.inbound_priority_frames_flood.inc(),
            Violation::WindowUpdateFrames => stats.inbound_window_update_frames_flood.inc(),
            Violation::HeaderBlockTooLarge => stats.header_overflow.inc(),
            Violation::OutboundFrames => stats.outbound_flood.inc(),
            Violation::OutboundControlFrames => stats.outbound_control_flood.inc(),
            Violation::FrameSize
            | Violation::NoSettingsFirst
            | Violation::ContinuationFrames
            | Violation::PrematureResets => {}
        }
    }

    /// The peer does not read what it is sent: Envoy closes such a connection
    /// without flushing (a GOAWAY would only join the queue nobody reads).
    pub fn is_outbound(self) -> bool {
        matches!(self, Violation::OutboundFrames | Violation::OutboundControlFrames)
    }
}
