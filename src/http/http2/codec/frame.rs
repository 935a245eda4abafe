//! RFC 9113 §4 and §6: HTTP/2 frames read from and written to bytes. Reading
//! applies every rule that needs nothing but the frame itself (fixed lengths,
//! stream 0 or not, padding within the payload, the peer's frame size bound),
//! with the error code the RFC names for each; rules that need the connection's
//! state (stream states, windows, header-block sequencing) are
//! `server_connection`'s. Payloads are `Bytes` split off the read buffer, not
//! copied: a DATA frame's body and a header block reach the caller as the same
//! memory the socket filled. Frames of unknown types are read and skipped (§4.1).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error_code::{ConnectionError, ErrorCode, FrameError};

pub const FRAME_HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value and lower bound (§6.5.2)...
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// ...and its upper bound.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// Frame types (§6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6).
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS and PING.
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// The 9 bytes before every frame's payload (§4.1); the reserved bit of the
/// stream identifier is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub length: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `bytes`, when 9 bytes are there.
    pub fn read(bytes: &[u8]) -> Option<FrameHeader> {
        let h = bytes.get(..FRAME_HEADER_LEN)?;
        Some(FrameHeader {
            length: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(&self.length.to_be_bytes()[1..]);
        out.put_u8(self.kind);
        out.put_u8(self.flags);
        out.put_u32(self.stream);
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A HEADERS or PRIORITY frame's priority fields (§5.3.2, deprecated
/// signalling that is still read and checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub dependency: u32,
    pub exclusive: bool,
    pub weight: u8,
}

impl Priority {
    fn read(b: &[u8]) -> Priority {
        let d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Priority { dependency: d & 0x7fff_ffff, exclusive: d & 0x8000_0000 != 0, weight: b[4] }
    }

    fn write(&self, out: &mut BytesMut) {
        out.put_u32(self.dependency | if self.exclusive { 0x8000_0000 } else { 0 });
        out.put_u8(self.weight);
    }
}

/// One frame, its payload fields read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `padding`: the pad length (with the PADDED flag) or `None`. What flow
    /// control counts is the whole payload, `flow_controlled_len`.
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
        padding: Option<u8>,
    },
    Headers {
        stream: u32,
        priority: Option<Priority>,
        block: Bytes,
        end_stream: bool,
        end_headers: bool,
        padding: Option<u8>,
    },
    Priority {
        stream: u32,
        priority: Priority,
    },
    RstStream {
        stream: u32,
        code: ErrorCode,
    },
    /// `params`: the raw 6-byte entries (`settings::Setting::iter`).
    Settings {
        ack: bool,
        params: Bytes,
    },
    PushPromise {
        stream: u32,
        promised: u32,
        block: Bytes,
        end_headers: bool,
        padding: Option<u8>,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: Bytes,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        block: Bytes,
        end_headers: bool,
    },
    /// A type this codec does not know (§4.1: ignored); its payload is dropped.
    Unknown {
        kind: u8,
        stream: u32,
        flags: u8,
    },
}

/// Splits one whole frame off the front of `input`. `Ok(None)`: the frame is not
/// all there yet (nothing is consumed). A frame longer than `max_frame_size` is
/// refused from its header alone, before its payload is waited for. On a stream
/// error the frame is consumed.
pub fn decode(input: &mut BytesMut, max_frame_size: u32) -> Result<Option<(FrameHeader, Frame)>, FrameError> {
    let Some(h) = FrameHeader::read(input) else { return Ok(None) };
    if h.length > max_frame_size {
        // A stream error would do for DATA (§4.2), but its payload would have
        // to be read to skip it; Envoy (nghttp2) ends the connection too.
        return Err(ConnectionError::frame_size("frame larger than SETTINGS_MAX_FRAME_SIZE").into());
    }
    if input.len() < FRAME_HEADER_LEN + h.length as usize {
        return Ok(None);
    }
    input.advance(FRAME_HEADER_LEN);
    let payload = input.split_to(h.length as usize).freeze();
    parse(h, payload).map(|f| Some((h, f)))
}

/// A frame's payload read by its header's type and flags.
pub fn parse(h: FrameHeader, mut payload: Bytes) -> Result<Frame, FrameError> {
    // Envoy 1.40 sends GOAWAY for DATA and CONTINUATION on stream 0 and closes
    // silently for the other frames on the wrong stream (`ConnectionError`).
    let on_stream_0 = |what| if h.stream == 0 { Err(ConnectionError::protocol(what)) } else { Ok(()) };
    let silent_on_stream_0 =
        |what| if h.stream == 0 { Err(ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, what)) } else { Ok(()) };
    let not_on_stream_0 =
        |what| if h.stream != 0 { Err(ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, what)) } else { Ok(()) };
    let length_is = |n: usize, what| {
        if payload.len() != n {
            Err(ConnectionError::frame_size(what))
        } else {
            Ok(())
        }
    };
    Ok(match h.kind {
        kind::DATA => {
            on_stream_0("DATA on stream 0")?;
            let padding = strip_padding(&h, &mut payload, 0)?;
            Frame::Data { stream: h.stream, data: payload, end_stream: h.has(flag::END_STREAM), padding }
        }
        kind::HEADERS => {
            silent_on_stream_0("HEADERS on stream 0")?;
            let fields = if h.has(flag::PRIORITY) { 5 } else { 0 };
            let padding = strip_padding(&h, &mut payload, fields)?;
            let priority = if h.has(flag::PRIORITY) {
                let p = Priority::read(&payload[..5]);
                payload.advance(5);
                Some(p)
            } else {
                None
            };
            // A HEADERS depending on itself is a stream error (§5.3.1) that
            // `server_connection` answers once its header block is whole
            // (the block must still reach the HPACK decoder).
            Frame::Headers {
                stream: h.stream,
                priority,
                block: payload,
                end_stream: h.has(flag::END_STREAM),
                end_headers: h.has(flag::END_HEADERS),
                padding,
            }
        }
        kind::PRIORITY => {
            // On stream 0 too: §6.3 makes that a connection error, but Envoy
            // 1.40 (nghttp2) ignores it (checked by running it).
            if payload.len() != 5 {
                if h.stream == 0 {
                    return Err(ConnectionError::frame_size("PRIORITY not 5 bytes long").into());
                }
                return Err(FrameError::Stream { stream: h.stream, code: ErrorCode::FRAME_SIZE_ERROR });
            }
            // One making its stream depend on itself is a stream error by RFC 9113
            // §5.3.1, but Envoy 1.40 (nghttp2) ignores it, on an idle, open or
            // closed stream alike (checked by running it), as every PRIORITY.
            Frame::Priority { stream: h.stream, priority: Priority::read(&payload) }
        }
        kind::RST_STREAM => {
            silent_on_stream_0("RST_STREAM on stream 0")?;
            length_is(4, "RST_STREAM not 4 bytes long")?;
            Frame::RstStream { stream: h.stream, code: ErrorCode(payload.get_u32()) }
        }
        kind::SETTINGS => {
            not_on_stream_0("SETTINGS on a stream")?;
            let ack = h.has(flag::ACK);
            if ack && !payload.is_empty() {
                return Err(ConnectionError::frame_size("SETTINGS ACK with a payload").into());
            }
            if payload.len() % 6 != 0 {
                return Err(ConnectionError::frame_size("SETTINGS not a multiple of 6 bytes long").into());
            }
            Frame::Settings { ack, params: payload }
        }
        kind::PUSH_PROMISE => {
            silent_on_stream_0("PUSH_PROMISE on stream 0")?;
            let padding = strip_padding(&h, &mut payload, 4)?;
            let promised = payload.get_u32() & 0x7fff_ffff;
            Frame::PushPromise {
                stream: h.stream,
                promised,
                block: payload,
                end_headers: h.has(flag::END_HEADERS),
                padding,
            }
        }
        kind::PING => {
            not_on_stream_0("PING on a stream")?;
            length_is(8, "PING not 8 bytes long")?;
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&payload);
            Frame::Ping { ack: h.has(flag::ACK), payload: bytes }
        }
        kind::GOAWAY => {
            not_on_stream_0("GOAWAY on a stream")?;
            if payload.len() < 8 {
                return Err(ConnectionError::frame_size("GOAWAY shorter than 8 bytes").into());
            }
            let last_stream = payload.get_u32() & 0x7fff_ffff;
            let code = ErrorCode(payload.get_u32());
            Frame::GoAway { last_stream, code, debug: payload }
        }
        kind::WINDOW_UPDATE => {
            length_is(4, "WINDOW_UPDATE not 4 bytes long")?;
            let increment = payload.get_u32() & 0x7fff_ffff;
            if increment == 0 {
                // A stream error on a stream by §6.9, but Envoy 1.40 closes the
                // connection for either, with no GOAWAY (checked by running it).
                return Err(ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE of 0").into());
            }
            Frame::WindowUpdate { stream: h.stream, increment }
        }
        kind::CONTINUATION => {
            on_stream_0("CONTINUATION on stream 0")?;
            Frame::Continuation { stream: h.stream, block: payload, end_headers: h.has(flag::END_HEADERS) }
        }
        other => Frame::Unknown { kind: other, stream: h.stream, flags: h.flags },
    })
}

/// With the PADDED flag: drops the pad length byte and the padding, which must
/// leave at least `fields` bytes (§6.1, §6.2: padding as long as the payload or
/// longer is PROTOCOL_ERROR). Without it, checks that `fields` bytes are there.
fn strip_padding(h: &FrameHeader, payload: &mut Bytes, fields: usize) -> Result<Option<u8>, ConnectionError> {
    if !h.has(flag::PADDED) {
        if payload.len() < fields {
            return Err(ConnectionError::frame_size("frame shorter than its fields"));
        }
        return Ok(None);
    }
    let Some(&pad) = payload.first() else {
        return Err(ConnectionError::frame_size("PADDED frame without its pad length"));
    };
    if payload.len() - 1 < fields {
        return Err(ConnectionError::frame_size("frame shorter than its fields"));
    }
    if usize::from(pad) > payload.len() - 1 - fields {
        return Err(ConnectionError::protocol("padding longer than the payload"));
    }
    payload.advance(1);
    payload.truncate(payload.len() - usize::from(pad));
    Ok(Some(pad))
}

impl Frame {
    /// The stream the frame is on (0: the connection).
    pub fn stream(&self) -> u32 {
        match *self {
            Frame::Data { stream, .. }
            | Frame::Headers { stream, .. }
            | Frame::Priority { stream, .. }
            | Frame::RstStream { stream, .. }
            | Frame::PushPromise { stream, .. }
            | Frame::WindowUpdate { stream, .. }
            | Frame::Continuation { stream, .. }
            | Frame::Unknown { stream, .. } => stream,
            Frame::Settings { .. } | Frame::Ping { .. } | Frame::GoAway { .. } => 0,
        }
    }

    /// Appends the frame's bytes to `out` (padding as zeros).
    pub fn encode(&self, out: &mut BytesMut) {
        let pad_flag = |p: &Option<u8>| if p.is_some() { flag::PADDED } else { 0 };
        let pad_len = |p: &Option<u8>| p.map_or(0, |n| 1 + u32::from(n));
        let bit = |on: bool, f: u8| if on { f } else { 0 };
        let (length, kind, flags, stream) = match self {
            Frame::Data { stream, data, end_stream, padding } => (
                data.len() as u32 + pad_len(padding),
                kind::DATA,
                bit(*end_stream, flag::END_STREAM) | pad_flag(padding),
                *stream,
            ),
            Frame::Headers { stream, priority, block, end_stream, end_headers, padding } => (
                block.len() as u32 + pad_len(padding) + if priority.is_some() { 5 } else { 0 },
                kind::HEADERS,
                bit(*end_stream, flag::END_STREAM)
                    | bit(*end_headers, flag::END_HEADERS)
                    | bit(priority.is_some(), flag::PRIORITY)
                    | pad_flag(padding),
                *stream,
            ),
            Frame::Priority { stream, .. } => (5, kind::PRIORITY, 0, *stream),
            Frame::RstStream { stream, .. } => (4, kind::RST_STREAM, 0, *stream),
            Frame::Settings { ack, params } => (params.len() as u32, kind::SETTINGS, bit(*ack, flag::ACK), 0),
            Frame::PushPromise { stream, block, end_headers, padding, .. } => (
                4 + block.len() as u32 + pad_len(padding),
                kind::PUSH_PROMISE,
                bit(*end_headers, flag::END_HEADERS) | pad_flag(padding),
                *stream,
            ),
            Frame::Ping { ack, .. } => (8, kind::PING, bit(*ack, flag::ACK), 0),
            Frame::GoAway { debug, .. } => (8 + debug.len() as u32, kind::GOAWAY, 0, 0),
            Frame::WindowUpdate { stream, .. } => (4, kind::WINDOW_UPDATE, 0, *stream),
            Frame::Continuation { stream, block, end_headers } => {
                (block.len() as u32, kind::CONTINUATION, bit(*end_headers, flag::END_HEADERS), *stream)
            }
            Frame::Unknown { kind, stream, flags } => (0, *kind, *flags, *stream),
        };
        FrameHeader { length, kind, flags, stream }.write(out);
        let padded = |out: &mut BytesMut, padding: &Option<u8>, body: &dyn Fn(&mut BytesMut)| {
            if let Some(n) = padding {
                out.put_u8(*n);
            }
            body(out);
            out.put_bytes(0, padding.map_or(0, usize::from));
        };
        match self {
            Frame::Data { data, padding, .. } => padded(out, padding, &|out| out.put_slice(data)),
            Frame::Headers { priority, block, padding, .. } => padded(out, padding, &|out| {
                if let Some(p) = priority {
                    p.write(out);
                }
                out.put_slice(block);
            }),
            Frame::Priority { priority, .. } => priority.write(out),
            Frame::RstStream { code, .. } => out.put_u32(code.0),
            Frame::Settings { params, .. } => out.put_slice(params),
            Frame::PushPromise { promised, block, padding, .. } => padded(out, padding, &|out| {
                out.put_u32(*promised);
                out.put_slice(block);
            }),
            Frame::Ping { payload, .. } => out.put_slice(payload),
            Frame::GoAway { last_stream, code, debug } => {
                out.put_u32(*last_stream);
                out.put_u32(code.0);
                out.put_slice(debug);
            }
            Frame::WindowUpdate { increment, .. } => out.put_u32(*increment),
            Frame::Continuation { block, .. } => out.put_slice(block),
            Frame::Unknown { .. } => {}
        }
    }
}

/// The bytes flow control counts for a DATA frame: its whole payload, pad
/// length and padding included (§6.1).
pub fn flow_controlled_len(data: &Bytes, padding: Option<u8>) -> u32 {
    data.len() as u32 + padding.map_or(0, |n| 1 + u32::from(n))
}
