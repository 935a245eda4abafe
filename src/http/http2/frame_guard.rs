//! Envoy's HTTP/2 frame limits that `h2` does not have, applied as the
//! connection's bytes pass between the socket and the codec; and the frame
//! rules `h2` enforces with a generic PROTOCOL_ERROR where RFC 9113 names the
//! error (a fixed-length frame of another length is FRAME_SIZE_ERROR; the
//! client's first frame must be SETTINGS).
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
//!
//! Streams are followed at the frame level too, so that Envoy's premature-reset
//! rule sees every stream reset within a second of its start, whoever sent the
//! RST_STREAM and whether or not the codec handed the stream up: rapid reset
//! (CVE-2023-44487) resets streams before they are accepted, and MadeYouReset
//! (CVE-2025-8671) makes the server reset them. `http2.rx_reset` and `tx_reset`
//! count RST_STREAM frames each way, as Envoy's do.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::flood_limits::{InboundFrameLimits, PrematureResets, PREMATURE_RESET_LIFETIME};
use super::options::Http2Options;
use super::stats::Http2CodecStats;
pub use super::violation::Violation;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// SETTINGS and PING.
const ACK: u8 = 0x1;

/// One connection's frame accounting, shared by its transport, its connection
/// loop and its streams (all on one worker).
pub struct FrameGuard {
    max_header_block: usize,
    stats: Arc<Http2CodecStats>,
    inbound: Cell<FrameCursor>,
    outbound: Cell<FrameCursor>,
    limits: Cell<InboundFrameLimits>,
    highest_stream: Cell<u32>,
    violation: Cell<Option<Violation>>,
    /// No frame was seen yet (the first must be SETTINGS).
    first_frame: Cell<bool>,
    /// Response bytes handed to the codec and not yet written to the socket.
    pending_send: Cell<u64>,
    /// When bytes last came from the client (the keepalive timeout).
    last_rx: Cell<Instant>,
    /// Encoded bytes of the header block being received (HEADERS and its
    /// CONTINUATIONs).
    header_block: Cell<usize>,
    /// Streams the client opened that have not ended, with when they began.
    open: RefCell<HashMap<u32, Instant>>,
    premature_resets: Cell<PrematureResets>,
    /// Wakes the connection loop when a violation is found.
    pub violated: Notify,
    /// Wakes streams waiting to send when pending send bytes were written.
    pub drained: Notify,
}

impl FrameGuard {
    /// `max_header_block`: `max_request_headers_kb` in bytes.
    pub fn new(options: &Http2Options, max_header_block: usize, stats: Arc<Http2CodecStats>) -> FrameGuard {
        FrameGuard {
            max_header_block,
            stats,
            // The client's first bytes are the 24-byte preface, not a frame.
            inbound: Cell::new(FrameCursor::after(24)),
            outbound: Cell::new(FrameCursor::after(0)),
            limits: Cell::new(InboundFrameLimits::new(options)),
            highest_stream: Cell::new(0),
            violation: Cell::new(None),
            first_frame: Cell::new(true),
            pending_send: Cell::new(0),
            last_rx: Cell::new(Instant::now()),
            header_block: Cell::new(0),
            open: RefCell::new(HashMap::new()),
            premature_resets: Cell::new(PrematureResets::default()),
            violated: Notify::new(),
            drained: Notify::new(),
        }
    }

    /// When bytes last came from the client.
    pub fn last_rx(&self) -> Instant {
        self.last_rx.get()
    }

    /// Records the connection's first violation and wakes its loop.
    fn violate(&self, v: Violation) {
        if self.violation.get().is_none() {
            self.violation.set(Some(v));
            self.violated.notify_one();
        }
    }

    /// The violation found, if any.
    pub fn violation(&self) -> Option<Violation> {
        self.violation.get()
    }

    /// Bytes read from the client; `Err` once they break a limit or rule (counted once).
    pub fn inbound(&self, bytes: &[u8]) -> Result<(), Violation> {
        if let Some(v) = self.violation.get() {
            return Err(v);
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
        if let Err(v) = result {
            self.violate(v);
        }
        result
    }

    /// RFC 9113's frame-length rules, then Envoy's
    /// `ProtocolConstraints::trackInboundFrame` and its limits.
    fn inbound_frame(&self, h: FrameHeader) -> Result<(), Violation> {
        if self.first_frame.replace(false) && (h.kind != SETTINGS || h.flags & ACK != 0) {
            return Err(Violation::NoSettingsFirst);
        }
        let bad_length = match h.kind {
            PRIORITY => h.length != 5,
            RST_STREAM | WINDOW_UPDATE => h.length != 4,
            SETTINGS if h.flags & ACK != 0 => h.length != 0,
            SETTINGS => h.length % 6 != 0,
            PING => h.length != 8,
            _ => false,
        };
        if bad_length {
            return Err(Violation::FrameSize);
        }
        if h.kind == HEADERS || h.kind == CONTINUATION {
            let block = if h.kind == HEADERS { 0 } else { self.header_block.get() } + h.length as usize;
            self.header_block.set(if h.flags & END_HEADERS != 0 { 0 } else { block });
            if block > self.max_header_block {
                Violation::HeaderBlockTooLarge.count(&self.stats);
                return Err(Violation::HeaderBlockTooLarge);
            }
        }
        if h.kind == RST_STREAM {
            self.stats.rx_reset.inc();
            self.stream_closed(h.stream, true)?;
        }
        let opens = h.kind == HEADERS && h.stream > self.highest_stream.get();
        if opens {
            self.highest_stream.set(h.stream);
            self.open.borrow_mut().insert(h.stream, Instant::now());
        }
        let mut limits = self.limits.get();
        let verdict = limits.frame(h.kind, h.flags, h.length, opens);
        self.limits.set(limits);
        if let Err(v) = verdict {
            v.count(&self.stats);
        }
        verdict
    }

    /// A stream ended: by an RST_STREAM either way (`reset`), or by Courier's
    /// END_STREAM. Envoy's premature-reset rule runs on each.
    fn stream_closed(&self, stream: u32, reset: bool) -> Result<(), Violation> {
        let Some(began) = self.open.borrow_mut().remove(&stream) else { return Ok(()) };
        let mut resets = self.premature_resets.get();
        let verdict = resets.stream_closed(reset && began.elapsed() < PREMATURE_RESET_LIFETIME);
        self.premature_resets.set(resets);
        verdict
    }

    /// Bytes written to the client.
    pub fn outbound(&self, bytes: &[u8]) {
        let mut cursor = self.outbound.get();
        let mut data = 0u64;
        let mut violation = None;
        cursor.feed(bytes, |h| {
            if h.kind == DATA {
                let mut limits = self.limits.get();
                limits.data_frame_sent();
                self.limits.set(limits);
                data += u64::from(h.length);
            }
            let ended = match h.kind {
                RST_STREAM => {
                    self.stats.tx_reset.inc();
                    Some(true)
                }
                DATA | HEADERS if h.flags & END_STREAM != 0 => Some(false),
                _ => None,
            };
            if let Some(reset) = ended {
                if let Err(v) = self.stream_closed(h.stream, reset) {
                    violation.get_or_insert(v);
                }
            }
        });
        if let Some(v) = violation {
            self.violate(v);
        }
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

/// Fuzz target (`crate::fuzz`): a client's bytes (after the preface) through the
/// guard at once and in reads cut where the input says: the same violation,
/// or none, either way (a frame header split across reads must count once).
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    let store = crate::stats::Store::new();
    let guard =
        || FrameGuard::new(&Http2Options::default(), 16 * 1024, Arc::new(Http2CodecStats::new(&store, "http2.")));
    let preface = [0u8; 24];
    let run = |cuts: &mut dyn Iterator<Item = usize>| {
        let g = guard();
        let _ = g.inbound(&preface);
        let mut at = 0;
        for cut in cuts.chain(std::iter::once(data.len())) {
            let cut = cut.clamp(at, data.len());
            let _ = g.inbound(&data[at..cut]);
            at = cut;
        }
        g.outbound(data);
        g.violation()
    };
    let whole = run(&mut std::iter::empty());
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    assert_eq!(run(&mut (step..data.len()).step_by(step)), whole, "read {step} bytes at a time");
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

    /// The client preface and its empty SETTINGS.
    fn preface() -> Vec<u8> {
        let mut p = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        p.extend(frame(SETTINGS, 0, 0, b""));
        p
    }

    #[test]
    fn fixed_length_frames_of_another_length_and_a_first_frame_not_settings_are_violations() {
        let g = guard();
        g.inbound(&preface()).unwrap();
        assert_eq!(g.inbound(&frame(PING, 0, 0, b"short")), Err(Violation::FrameSize));
        let g = guard();
        g.inbound(&preface()).unwrap();
        assert_eq!(g.inbound(&frame(SETTINGS, ACK, 0, b"x")), Err(Violation::FrameSize));
        let g = guard();
        g.inbound(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        assert_eq!(g.inbound(&frame(PING, 0, 0, b"12345678")), Err(Violation::NoSettingsFirst));
    }

    fn guard() -> FrameGuard {
        let store = crate::stats::Store::new();
        FrameGuard::new(&Http2Options::default(), 60 * 1024, Arc::new(Http2CodecStats::new(&store, "http2.")))
    }

    #[test]
    fn frames_split_anywhere_are_seen_whole() {
        let g = guard();
        let mut bytes = preface();
        bytes.extend(frame(HEADERS, 0x4, 1, b"abc"));
        bytes.extend(frame(HEADERS, 0x4, 3, b"abc"));
        for chunk in bytes.chunks(5) {
            g.inbound(chunk).unwrap();
        }
        assert_eq!(g.limits.get().opened_streams(), 2);
    }

    #[test]
    fn two_empty_data_frames_in_a_row_are_a_flood() {
        let g = guard();
        g.inbound(&preface()).unwrap();
        g.inbound(&frame(HEADERS, 0x4, 1, b"h")).unwrap();
        g.inbound(&frame(DATA, 0, 1, b"")).unwrap();
        g.inbound(&frame(DATA, 0, 1, b"x")).unwrap();
        g.inbound(&frame(DATA, 0, 1, b"")).unwrap();
        assert_eq!(g.inbound(&frame(DATA, 0, 1, b"")), Err(Violation::EmptyFrames));
        assert_eq!(g.stats.inbound_empty_frames_flood.value(), 1);
        // An empty DATA with END_STREAM is not empty-and-open.
        let g = guard();
        g.inbound(&preface()).unwrap();
        g.inbound(&frame(DATA, END_STREAM, 1, b"")).unwrap();
        g.inbound(&frame(DATA, END_STREAM, 3, b"")).unwrap();
    }

    #[test]
    fn window_updates_are_allowed_per_data_frame_sent() {
        let g = guard();
        g.inbound(&preface()).unwrap();
        for _ in 0..5 {
            g.inbound(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])).unwrap();
        }
        assert_eq!(g.inbound(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])), Err(Violation::WindowUpdateFrames));
        let g = guard();
        g.inbound(&preface()).unwrap();
        g.handed(3);
        g.outbound(&frame(DATA, 0, 1, b"abc"));
        assert_eq!(g.pending_send(), 0);
        for _ in 0..25 {
            g.inbound(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])).unwrap();
        }
    }

    #[test]
    fn half_of_the_first_500_streams_reset_early_is_the_premature_reset_rule() {
        let g = guard();
        g.inbound(&preface()).unwrap();
        for i in 0..249u32 {
            let id = 2 * i + 1;
            g.inbound(&frame(HEADERS, END_HEADERS, id, b"h")).unwrap();
            g.inbound(&frame(RST_STREAM, 0, id, &[0, 0, 0, 8])).unwrap();
        }
        assert_eq!(g.stats.rx_reset.value(), 249);
        // A stream Courier ended (END_STREAM sent) is not premature.
        g.inbound(&frame(HEADERS, END_HEADERS, 1001, b"h")).unwrap();
        g.outbound(&frame(HEADERS, END_HEADERS | END_STREAM, 1001, b"r"));
        assert_eq!(g.violation(), None);
        g.inbound(&frame(HEADERS, END_HEADERS, 1003, b"h")).unwrap();
        // A reset Courier sends counts too (MadeYouReset).
        g.outbound(&frame(RST_STREAM, 0, 1003, &[0, 0, 0, 1]));
        assert_eq!(g.violation(), Some(Violation::PrematureResets));
        assert_eq!(g.stats.tx_reset.value(), 1);
    }

    #[test]
    fn a_header_block_over_the_limit_is_a_continuation_flood() {
        let g = guard();
        g.inbound(&preface()).unwrap();
        g.inbound(&frame(HEADERS, 0, 1, &[0; 16_000])).unwrap();
        for _ in 0..2 {
            g.inbound(&frame(CONTINUATION, 0, 1, &[0; 16_000])).unwrap();
        }
        assert_eq!(g.inbound(&frame(CONTINUATION, 0, 1, &[0; 16_000])), Err(Violation::HeaderBlockTooLarge));
        assert_eq!(g.stats.header_overflow.value(), 1);
    }

    #[test]
    fn priority_frames_are_allowed_per_opened_stream() {
        let g = guard();
        g.inbound(&preface()).unwrap();
        for _ in 0..100 {
            g.inbound(&frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16])).unwrap();
        }
        assert_eq!(g.inbound(&frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16])), Err(Violation::PriorityFrames));
    }
}
