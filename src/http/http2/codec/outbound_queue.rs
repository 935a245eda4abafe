//! The bytes the codec has framed and the socket has not taken yet, counted in
//! frames as Envoy counts its outbound queue: every frame against
//! `max_outbound_frames`, and PING ACK, SETTINGS ACK and RST_STREAM — the frames
//! a client can make the server send without reading anything — against
//! `max_outbound_control_frames`. Past either, the connection is a flood
//! (`http2.outbound_flood`, `http2.outbound_control_flood`): a client that sends
//! SETTINGS or PINGs and never reads ends up here instead of being answered
//! into an ever-growing buffer. The buffer is given back when it drains, so an
//! idle connection holds none.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

use super::frame::Frame;
use crate::http::http2::violation::Violation;

/// A buffer kept across drains only below this capacity.
const KEEP_CAPACITY: usize = 16 * 1024;

#[derive(Debug)]
pub struct OutboundQueue {
    buf: BytesMut,
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
            buf: BytesMut::new(),
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
        frame.encode(&mut self.buf);
        let end = self.written + self.buf.len() as u64;
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

    /// The bytes to write.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// `n` bytes of `pending` were written.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.written += n as u64;
        while let Some(&(end, control)) = self.frame_ends.front() {
            if end > self.written {
                break;
            }
            self.frame_ends.pop_front();
            self.control_frames -= u32::from(control);
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        if self.frame_ends.is_empty() && self.frame_ends.capacity() > 64 {
            self.frame_ends = VecDeque::new();
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
        // Part of the first frame written: it still counts.
        q.advance(100);
        assert_eq!(q.frames(), 5);
        q.advance(16_009 * 2 - 100 + 13);
        assert_eq!((q.frames(), q.control_frames()), (2, 2));
        let rest = q.pending().len();
        q.advance(rest);
        assert_eq!((q.frames(), q.control_frames(), q.buf.capacity()), (0, 0, 0));
    }
}
