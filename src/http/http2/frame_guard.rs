//! Envoy's HTTP/2 frame limits that `h2` does not have, applied as the
//! connection's bytes pass between the socket and the codec.
//!
//! Only frame headers are read (9 bytes each); payloads are skipped. Inbound:
//! consecutive frames with an empty payload and no END_STREAM
//! (`max_consecutive_inbound_frames_with_empty_payload`), PRIORITY frames per
//! opened stream, and WINDOW_UPDATE frames per DATA frame sent, each Envoy's
//! formula; past one, the connection is a flood and is closed (GOAWAY
//! ENHANCE_YOUR_CALM). Outbound: DATA frames and the response bytes handed to
//! the codec but not yet written (`http2.pending_send_bytes`), which streams
//! wait on past the connection's buffer limit, so a client that does not read
//! holds at most that much of Courier's memory.

use std::cell::Cell;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::options::Http2Options;
use super::stats::Http2CodecStats;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;

/// The flood a connection was closed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    EmptyFrames,
    PriorityFrames,
    WindowUpdateFrames,
}

/// One connection's frame accounting, shared by its transport, its connection
/// loop and its streams (all on one worker).
pub struct FrameGuard {
    max_empty: u32,
    max_priority_per_stream: u64,
    max_window_updates_per_data_frame: u64,
    stats: Arc<Http2CodecStats>,
    inbound: Cell<FrameCursor>,
    outbound: Cell<FrameCursor>,
    consecutive_empty: Cell<u32>,
    priority_frames: Cell<u64>,
    window_update_frames: Cell<u64>,
    opened_streams: Cell<u64>,
    highest_stream: Cell<u32>,
    data_frames_sent: Cell<u64>,
    flood: Cell<Option<Flood>>,
    /// Response bytes handed to the codec and not yet written to the socket.
    pending_send: Cell<u64>,
    /// When bytes last came from the client (the keepalive timeout).
    last_rx: Cell<Instant>,
    /// Wakes the connection loop when a flood is found.
    pub flooded: Notify,
    /// Wakes streams waiting to send when pending send bytes were written.
    pub drained: Notify,
}

impl FrameGuard {
    pub fn new(options: &Http2Options, stats: Arc<Http2CodecStats>) -> FrameGuard {
        FrameGuard {
            max_empty: options.max_consecutive_inbound_frames_with_empty_payload,
            max_priority_per_stream: u64::from(options.max_inbound_priority_frames_per_stream),
            max_window_updates_per_data_frame: u64::from(options.max_inbound_window_update_frames_per_data_frame_sent),
            stats,
            // The client's first bytes are the 24-byte preface, not a frame.
            inbound: Cell::new(FrameCursor::after(24)),
            outbound: Cell::new(FrameCursor::after(0)),
            consecutive_empty: Cell::new(0),
            priority_frames: Cell::new(0),
            window_update_frames: Cell::new(0),
            opened_streams: Cell::new(0),
            highest_stream: Cell::new(0),
            data_frames_sent: Cell::new(0),
            flood: Cell::new(None),
            pending_send: Cell::new(0),
            last_rx: Cell::new(Instant::now()),
            flooded: Notify::new(),
            drained: Notify::new(),
        }
    }

    /// When bytes last came from the client.
    pub fn last_rx(&self) -> Instant {
        self.last_rx.get()
    }

    /// The flood found, if any.
    pub fn flood(&self) -> Option<Flood> {
        self.flood.get()
    }

    /// Bytes read from the client; `Err` once they make a flood (counted once).
    pub fn inbound(&self, bytes: &[u8]) -> Result<(), Flood> {
        if let Some(f) = self.flood.get() {
            return Err(f);
        }
        self.last_rx.set(Instant::now());
        let mut cursor = self.inbound.get();
        let mut result = Ok(());
        cursor.feed(bytes, |h| {
            if result.is_ok() {
                result = self.inbound_frame(h);
            }
        });
        self.inbound.set(cursor);
        if let Err(f) = result {
            self.flood.set(Some(f));
            self.flooded.notify_one();
        }
        result
    }

    /// Envoy's `ProtocolConstraints::trackInboundFrame` and its limits.
    fn inbound_frame(&self, h: FrameHeader) -> Result<(), Flood> {
        match h.kind {
            DATA | HEADERS | CONTINUATION => {
                if h.kind == HEADERS && h.stream > self.highest_stream.get() {
                    self.highest_stream.set(h.stream);
                    self.opened_streams.set(self.opened_streams.get() + 1);
                }
                let empty = h.length == 0 && (h.kind == CONTINUATION || h.flags & END_STREAM == 0);
                self.consecutive_empty.set(if empty { self.consecutive_empty.get() + 1 } else { 0 });
            }
            PRIORITY => self.priority_frames.set(self.priority_frames.get() + 1),
            WINDOW_UPDATE => self.window_update_frames.set(self.window_update_frames.get() + 1),
            _ => {}
        }
        let opened = self.opened_streams.get();
        if self.consecutive_empty.get() > self.max_empty {
            self.stats.inbound_empty_frames_flood.inc();
            return Err(Flood::EmptyFrames);
        }
        if self.priority_frames.get() > self.max_priority_per_stream * (1 + opened) {
            self.stats.inbound_priority_frames_flood.inc();
            return Err(Flood::PriorityFrames);
        }
        let allowed = 5 + 2 * (opened + self.max_window_updates_per_data_frame * self.data_frames_sent.get());
        if self.window_update_frames.get() > allowed {
            self.stats.inbound_window_update_frames_flood.inc();
            return Err(Flood::WindowUpdateFrames);
        }
        Ok(())
    }

    /// Bytes written to the client.
    pub fn outbound(&self, bytes: &[u8]) {
        let mut cursor = self.outbound.get();
        let mut data = 0u64;
        cursor.feed(bytes, |h| {
            if h.kind == DATA {
                self.data_frames_sent.set(self.data_frames_sent.get() + 1);
                data += u64::from(h.length);
            }
        });
        self.outbound.set(cursor);
        if data > 0 {
            let before = self.pending_send.get();
            let after = before.saturating_sub(data);
            self.pending_send.set(after);
            self.stats.pending_send_bytes.sub(before.min(data) as i64);
            self.drained.notify_waiters();
        }
    }

    /// A stream hands `n` response bytes to the codec.
    pub fn handed(&self, n: usize) {
        self.pending_send.set(self.pending_send.get() + n as u64);
        self.stats.pending_send_bytes.add(n as i64);
    }

    pub fn pending_send(&self) -> u64 {
        self.pending_send.get()
    }

    /// Waits until fewer than `limit` bytes are pending to be written.
    pub async fn wait_below(&self, limit: u64) {
        while self.pending_send.get() >= limit {
            let drained = self.drained.notified();
            if self.pending_send.get() < limit {
                return;
            }
            drained.await;
        }
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        // What the codec never wrote leaves the gauge with the connection.
        self.stats.pending_send_bytes.sub(self.pending_send.get() as i64);
    }
}

#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    length: u32,
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Where a byte stream is in its frames: skipping a payload, or gathering the
/// next 9-byte header.
#[derive(Debug, Clone, Copy)]
struct FrameCursor {
    skip: usize,
    header: [u8; 9],
    have: usize,
}

impl FrameCursor {
    fn after(skip: usize) -> FrameCursor {
        FrameCursor { skip, header: [0; 9], have: 0 }
    }

    /// Advances over `bytes`, calling `on_header` for each frame header completed.
    fn feed(&mut self, mut bytes: &[u8], mut on_header: impl FnMut(FrameHeader)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                let h = &self.header;
                let header = FrameHeader {
                    length: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                self.have = 0;
                self.skip = header.length as usize;
                on_header(header);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn guard() -> FrameGuard {
        let store = crate::stats::Store::new();
        FrameGuard::new(&Http2Options::default(), Arc::new(Http2CodecStats::new(&store, "http2.")))
    }

    #[test]
    fn frames_split_anywhere_are_seen_whole() {
        let g = guard();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(HEADERS, 0x4, 1, b"abc"));
        bytes.extend(frame(HEADERS, 0x4, 3, b"abc"));
        for chunk in bytes.chunks(5) {
            g.inbound(chunk).unwrap();
        }
        assert_eq!(g.opened_streams.get(), 2);
    }

    #[test]
    fn two_empty_data_frames_in_a_row_are_a_flood() {
        let g = guard();
        g.inbound(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        g.inbound(&frame(HEADERS, 0x4, 1, b"h")).unwrap();
        g.inbound(&frame(DATA, 0, 1, b"")).unwrap();
        g.inbound(&frame(DATA, 0, 1, b"x")).unwrap();
        g.inbound(&frame(DATA, 0, 1, b"")).unwrap();
        assert_eq!(g.inbound(&frame(DATA, 0, 1, b"")), Err(Flood::EmptyFrames));
        assert_eq!(g.stats.inbound_empty_frames_flood.value(), 1);
        // An empty DATA with END_STREAM is not empty-and-open.
        let g = guard();
        g.inbound(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        g.inbound(&frame(DATA, END_STREAM, 1, b"")).unwrap();
        g.inbound(&frame(DATA, END_STREAM, 3, b"")).unwrap();
    }

    #[test]
    fn window_updates_are_allowed_per_data_frame_sent() {
        let g = guard();
        g.inbound(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        for _ in 0..5 {
            g.inbound(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])).unwrap();
        }
        assert_eq!(g.inbound(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])), Err(Flood::WindowUpdateFrames));
        let g = guard();
        g.inbound(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        g.handed(3);
        g.outbound(&frame(DATA, 0, 1, b"abc"));
        assert_eq!(g.pending_send(), 0);
        for _ in 0..25 {
            g.inbound(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])).unwrap();
        }
    }

    #[test]
    fn priority_frames_are_allowed_per_opened_stream() {
        let g = guard();
        g.inbound(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        for _ in 0..100 {
            g.inbound(&frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16])).unwrap();
        }
        assert_eq!(g.inbound(&frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16])), Err(Flood::PriorityFrames));
    }
}
