//! What the server connection reports to its caller as bytes come in, and the
//! errors of the caller's commands. Header blocks are opaque `Bytes` here: the
//! caller decodes them with its HPACK decoder, in the order they are reported —
//! including `DiscardHeaderBlock`, the blocks of streams the codec refused or
//! found closed, which must still pass through the decoder so that its dynamic
//! table stays in step with the client's encoder (RFC 9113 §4.3).

use bytes::Bytes;

use super::error_code::ErrorCode;
use super::settings::PeerSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new stream: its request's complete header block (HEADERS and its
    /// CONTINUATIONs), and whether the request ends there.
    Headers { stream: u32, block: Bytes, end_stream: bool },
    /// Request body bytes. Their flow-control window comes back to the client
    /// when the caller says they were consumed (`ServerConnection::release`).
    Data { stream: u32, data: Bytes, end_stream: bool },
    /// The request's trailers (ending it).
    Trailers { stream: u32, block: Bytes },
    /// A header block that starts or continues no stream: decode it (for the
    /// HPACK table) and drop it.
    DiscardHeaderBlock { block: Bytes },
    /// The stream ended by RST_STREAM: the client's (`by_peer`), or the codec's
    /// for a stream error it found (the RST_STREAM is queued), REFUSED_STREAM
    /// for a stream past SETTINGS_MAX_CONCURRENT_STREAMS included (never
    /// reported as `Headers`). Not reported for the caller's own `reset_stream`.
    Reset { stream: u32, code: ErrorCode, by_peer: bool },
    /// The codec queued RST_STREAM for a stream that was not open (a new
    /// stream it refused on sight): nothing ends, but Envoy counts every
    /// RST_STREAM it sends (`http2.tx_reset`).
    ResetSent { stream: u32, code: ErrorCode },
    /// A new stream's HEADERS made it depend on itself (RFC 9113 §5.3.1): a
    /// stream error, but nothing is sent and no stream opens (its block came
    /// as `DiscardHeaderBlock`); the caller decides. Envoy 1.40 closes the
    /// connection.
    SelfDependentStream { stream: u32 },
    /// The client's GOAWAY.
    GoAway { last_stream: u32, code: ErrorCode, debug: Bytes },
    /// The client's SETTINGS, applied (the ACK is queued); the HPACK encoder
    /// follows `header_table_size`.
    Settings(PeerSettings),
    /// The client acknowledged the server's SETTINGS.
    SettingsAcked,
    /// The answer to the server's PING.
    PingAck { payload: [u8; 8] },
    /// A stream that was short of send window has some again.
    SendWindowOpened { stream: u32 },
}

/// Why a command was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The stream is not open for sending (never opened, ended or reset).
    StreamNotWritable,
    /// The connection has ended (a connection error, or an outbound flood).
    ConnectionClosed,
}
