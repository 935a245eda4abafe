//! RFC 9113 §7's error codes, as the codec sends them in RST_STREAM and GOAWAY
//! and reads them from the peer's (an unknown code is kept as-is: §7 says it
//! triggers no special behaviour), and the two shapes an error takes: a stream
//! error ends one stream, a connection error ends the connection, with GOAWAY
//! or, for the frames Envoy 1.40 closes on without one, silently.

use crate::http::http2::violation::Violation;

/// An HTTP/2 error code (RFC 9113 §7).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The RFC's name, or `None` for a code it does not define.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        NAMES.get(self.0 as usize).copied()
    }
}

impl std::fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl From<Violation> for ErrorCode {
    fn from(v: Violation) -> ErrorCode {
        match v {
            Violation::FrameSize => ErrorCode::FRAME_SIZE_ERROR,
            Violation::NoSettingsFirst => ErrorCode::PROTOCOL_ERROR,
            _ => ErrorCode::ENHANCE_YOUR_CALM,
        }
    }
}

/// Why the connection ends: a frame the RFC forbids (its code and what was
/// wrong, for the debug log) or one of Envoy's limits.
///
/// `goaway` says whether Envoy 1.40 sends a GOAWAY for the frame. It does for
/// what nghttp2 finds while reading frames (a frame too large or of the wrong
/// length, DATA or CONTINUATION on stream 0, DATA on an idle or half-closed
/// stream, padding, a header block cut short, a first frame not SETTINGS, a
/// header block that does not decode); for what it finds acting on a whole
/// frame (HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY or PUSH_PROMISE on the
/// wrong stream, HEADERS after END_STREAM, a bad SETTINGS value, a
/// WINDOW_UPDATE of 0 or on an idle stream, a window overflow, an even stream
/// id, a bad preface) Envoy closes the
/// connection with no GOAWAY reaching the client. Checked by running it, frame
/// by frame; either way it counts `downstream_cx_protocol_error` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionError {
    Protocol { code: ErrorCode, what: &'static str, goaway: bool },
    Limit(Violation),
}

impl ConnectionError {
    /// GOAWAY PROTOCOL_ERROR.
    pub(crate) fn protocol(what: &'static str) -> ConnectionError {
        ConnectionError::Protocol { code: ErrorCode::PROTOCOL_ERROR, what, goaway: true }
    }

    /// GOAWAY FRAME_SIZE_ERROR.
    pub(crate) fn frame_size(what: &'static str) -> ConnectionError {
        ConnectionError::Protocol { code: ErrorCode::FRAME_SIZE_ERROR, what, goaway: true }
    }

    /// The connection closes with no GOAWAY, as Envoy 1.40 does for `what`
    /// (`code` is the RFC's, for the debug log).
    pub(crate) fn silent(code: ErrorCode, what: &'static str) -> ConnectionError {
        ConnectionError::Protocol { code, what, goaway: false }
    }

    /// Whether a GOAWAY goes out before the connection closes.
    pub fn sends_goaway(self) -> bool {
        match self {
            ConnectionError::Protocol { goaway, .. } => goaway,
            ConnectionError::Limit(v) => !v.is_outbound(),
        }
    }

    /// The GOAWAY's error code.
    pub fn code(self) -> ErrorCode {
        match self {
            ConnectionError::Protocol { code, .. } => code,
            ConnectionError::Limit(v) => v.into(),
        }
    }
}

/// What a malformed frame is: an error of the whole connection, or of the one
/// stream it is on (RFC 9113 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Connection(ConnectionError),
    Stream { stream: u32, code: ErrorCode },
}

impl From<ConnectionError> for FrameError {
    fn from(e: ConnectionError) -> FrameError {
        FrameError::Connection(e)
    }
}
