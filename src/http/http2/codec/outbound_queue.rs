//! The bytes the codec has framed and the socket has not taken yet, counted in
//! frames as Envoy counts its outbound queue: every frame against
//! `max_outbound_frames`, and PING ACK, SETTINGS ACK and RST_STREAM — the frames
//! a client can make the server send without reading anything — against
//! `max_outbound_control_frames`. Past either, the connection is a flood
//! (`http2.outbound_flood`, `http2.outbound_control_flood`): a client that sends
//! SETTINGS or PINGs and never reads ends up here instead of being answered
//! into an ever-growing buffer. The buffer is given back when it drains, so an
//! idle connection holds none. A large DATA payload is not copied: it is queued
//! as the caller's own `Bytes` after its 9-byte header, and the socket writes it
//! from there.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::frame::Frame;
use crate::http::http2::violation::Violation;

/// DATA payloads from this size on are queued without a copy.
const ZERO_COPY_DATA: usize = 1024;

/// What an empty buffer gets on its first frame: room for a loop turn's few
/// responses at once rather than a doubling from a few bytes per frame; under
/// 1 KiB, a size glibc's allocator serves from its per-thread cache.
const FIRST_CAPACITY: usize = 1000;

#[derive(Debug)]
pub struct OutboundQueue {
    /// Bytes to write before `buf`'s: encoded frames split off it, and DATA
    /// payloads as given.
    chunks: VecDeque<Bytes>,
    /// Encoded frames after the last of `chunks`.
    buf: BytesMut,
    /// Bytes in `chunks` and `buf`.
    len: usize,
    /// Where each queued frame ends (counted from the first byte ever queued),
    /// and whether it is a control frame.
    frame_ends: VecDeque<(u64, bool)>,
    /// Bytes written to the socket since the start.
    written: u64,
    control_frames: u32,
    max_frames: u32,
    max_control_frames: u32,
}

impl OutboundQueue {
    pub fn new(max_frames: u32, max_control_frames: u32) -> OutboundQueue {
        OutboundQueue {
            chunks: VecDeque::new(),
            buf: BytesMut::new(),
            len: 0,
            frame_ends: VecDeque::new(),
            written: 0,
            control_frames: 0,
            max_frames,
            max_control_frames,
        }
    }

    /// Queues a frame; `Err` once the queue is over a limit (the frame is queued
    /// anyway: the connection is ending).
    pub fn push(&mut self, frame: &Frame) -> Result<(), Violation> {
        let control = matches!(
            frame,
            Frame::Ping { ack: true, .. } | Frame::Settings { ack: true, .. } | Frame::RstStream { .. }
        );
        if self.buf.capacity() == 0 {
            self.buf.reserve(FIRST_CAPACITY);
        }
        let before = self.buf.len();
        match frame {
            Frame::Data { stream, data, end_stream, padding: None } if data.len() >= ZERO_COPY_DATA => {
                let header =
                    Frame::Data { stream: *stream, data: Bytes::new(), end_stream: *end_stream, padding: None };
                header.encode(&mut self.buf);
                // The header carries the payload's length.
                let at = self.buf.len() - super::frame::FRAME_HEADER_LEN;
                self.buf[at..at + 3].copy_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                self.chunks.push_back(self.buf.split().freeze());
                self.chunks.push_back(data.clone());
                self.len += super::frame::FRAME_HEADER_LEN + data.len();
            }
            _ => {
                frame.encode(&mut self.buf);
                self.len += self.buf.len() - before;
            }
        }
        let end = self.written + self.len as u64;
        self.frame_ends.push_back((end, control));
        self.control_frames += u32::from(control);
        if self.frame_ends.len() > self.max_frames as usize {
            return Err(Violation::OutboundFrames);
        }
        if self.control_frames > self.max_control_frames {
            return Err(Violation::OutboundControlFrames);
        }
        Ok(())
    }

    /// The next bytes to write (a part of what is queued when a DATA payload
    /// was queued without a copy: write, `advance`, and ask again).
    pub fn pending(&self) -> &[u8] {
        self.chunks.front().map_or(&self.buf[..], |c| &c[..])
    }

    /// Bytes queued and not written.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `n` bytes of `pending` were written.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.pending().len());
        match self.chunks.front_mut() {
            Some(chunk) => {
                chunk.advance(n);
                if chunk.is_empty() {
                    self.chunks.pop_front();
                }
            }
            None => self.buf.advance(n),
        }
        self.len -= n;
        self.written += n as u64;
        while let Some(&(end, control)) = self.frame_ends.front() {
            if end > self.written {
                break;
            }
            self.frame_ends.pop_front();
            self.control_frames -= u32::from(control);
        }
        if self.len == 0 && self.buf.capacity() > 0 {
            // Drained: an idle connection keeps no buffer (the next burst
            // allocates one).
            self.buf = BytesMut::new();
        }
        if self.frame_ends.is_empty() && self.frame_ends.capacity() > 64 {
            self.frame_ends = VecDeque::new();
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 64 {
            self.chunks = VecDeque::new();
        }
    }

    /// Frames queued and not all written.
    pub fn frames(&self) -> usize {
        self.frame_ends.len()
    }

    pub fn control_frames(&self) -> u32 {
        self.control_frames
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::http::http2::codec::ErrorCode;

    #[test]
    fn frames_count_until_written_and_a_drained_buffer_is_given_back() {
        let mut q = OutboundQueue::new(100, 2);
        let data = Frame::Data { stream: 1, data: Bytes::from(vec![0; 16_000]), end_stream: false, padding: None };
        q.push(&data).unwrap();
        q.push(&data).unwrap();
        q.push(&Frame::RstStream { stream: 1, code: ErrorCode::CANCEL }).unwrap();
        q.push(&Frame::Ping { ack: true, payload: [0; 8] }).unwrap();
        assert_eq!((q.frames(), q.control_frames()), (4, 2));
        assert_eq!(q.push(&Frame::Settings { ack: true, params: Bytes::new() }), Err(Violation::OutboundControlFrames));
        // The payloads are queued as they are, not copied.
        let Frame::Data { data: payload, .. } = &data else { unreachable!() };
        assert_eq!(q.chunks.len(), 4);
        assert_eq!(q.chunks[1].as_ptr(), payload.as_ptr());
        // Part of the first frame written: it still counts.
        q.advance(5);
        assert_eq!(q.frames(), 5);
        assert_eq!(drain(&mut q, 16_009 * 2 - 5 + 13).len(), 16_009 * 2 - 5 + 13);
        assert_eq!((q.frames(), q.control_frames()), (2, 2));
        drain(&mut q, usize::MAX);
        assert_eq!((q.frames(), q.control_frames(), q.len()), (0, 0, 0));
        assert_eq!(q.buf.capacity() + q.chunks.len(), 0);
    }

    /// Writes up to `n` bytes the way a socket loop does.
    fn drain(q: &mut OutboundQueue, mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while n > 0 && !q.is_empty() {
            let take = q.pending().len().min(n);
            out.extend_from_slice(&q.pending()[..take]);
            q.advance(take);
            n -= take;
        }
        out
    }
}
