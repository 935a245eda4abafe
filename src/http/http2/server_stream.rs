//! One request stream of a downstream HTTP/2 connection as its task sees it,
//! over Courier's sans-IO `codec::ServerConnection`.
//!
//! The connection loop owns the socket and feeds the codec; streams run as
//! tasks of their own on the same worker. What they share is `ConnShared`: the
//! codec and the HPACK encoder (a stream's commands go straight into them, in
//! the order the stream issues them, which is the order HPACK needs), and for
//! each open stream a `Slot` where the loop leaves what arrived (DATA,
//! trailers, a reset, window opening) and wakes the task. Everything is on one
//! thread: `RefCell`s are borrowed only for the length of one codec call.
//!
//! A stream's end is its `Slot`'s drop (every `StreamHandle` gone): a stream
//! that did not end both ways is reset (NO_ERROR when the response went whole,
//! CANCEL otherwise, as `h2` did), its unread DATA's window is given back, and
//! Envoy's premature-reset rule hears how it ended.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::codec::{ErrorCode, SendError, ServerConnection};
use super::flood_limits::{PrematureResets, PREMATURE_RESET_LIFETIME};
use super::hpack::Encoder;
use super::stats::Http2CodecStats;
use super::violation::Violation;

/// What a connection's loop and its streams share.
pub struct ConnShared {
    pub conn: RefCell<ServerConnection>,
    encoder: RefCell<Encoder>,
    streams: RefCell<HashMap<u32, Weak<Slot>>>,
    /// A stream queued output: the loop writes it.
    pub output: Notify,
    /// The loop wrote output: streams waiting on the pending-send bound look again.
    drained: Notify,
    stats: Arc<Http2CodecStats>,
    /// What `http2.pending_send_bytes` holds for this connection.
    pending_reported: Cell<usize>,
    premature: Cell<PrematureResets>,
    /// The premature-reset rule's verdict, for the loop.
    violation: Cell<Option<Violation>>,
    /// The connection is gone: every command fails, every wait ends.
    closed: Cell<bool>,
}

/// What became of a DATA frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataTaken {
    Yes,
    /// No task serves the stream.
    NoStream,
    /// They break the request's `content-length`.
    Malformed,
}

/// The stream gone: reset (by either side) or its connection closed.
#[derive(Debug, Clone, Copy)]
pub struct StreamGone;

impl From<SendError> for StreamGone {
    fn from(_: SendError) -> StreamGone {
        StreamGone
    }
}

impl ConnShared {
    pub fn new(conn: ServerConnection, stats: Arc<Http2CodecStats>) -> Rc<ConnShared> {
        Rc::new(ConnShared {
            conn: RefCell::new(conn),
            encoder: RefCell::new(Encoder::new()),
            streams: RefCell::new(HashMap::new()),
            output: Notify::new(),
            drained: Notify::new(),
            stats,
            pending_reported: Cell::new(0),
            premature: Cell::new(PrematureResets::default()),
            violation: Cell::new(None),
            closed: Cell::new(false),
        })
    }

    /// A stream the client opened; `end_stream` when its request has no body;
    /// `content_length` the body's length when the request gave it.
    pub fn open(self: &Rc<Self>, id: u32, end_stream: bool, content_length: Option<u64>) -> StreamHandle {
        let slot = Rc::new(Slot {
            id,
            shared: self.clone(),
            started: Instant::now(),
            data: RefCell::new(VecDeque::new()),
            recv_end: Cell::new(end_stream),
            length_left: Cell::new(content_length),
            trailers: RefCell::new(None),
            reset: Cell::new(false),
            sent_end: Cell::new(false),
            window_opened: Cell::new(false),
            recv_waker: Cell::new(None),
            send_waker: Cell::new(None),
            reset_waker: Cell::new(None),
        });
        self.streams.borrow_mut().insert(id, Rc::downgrade(&slot));
        StreamHandle { slot }
    }

    fn slot(&self, id: u32) -> Option<Rc<Slot>> {
        self.streams.borrow().get(&id).and_then(Weak::upgrade)
    }

    /// Request body bytes for `id`. Not taken (the caller gives their window
    /// back) when no task serves the stream, or when they break the request's
    /// `content-length` (RFC 9113 §8.1.1: malformed, the caller resets it).
    pub fn data(&self, id: u32, data: Bytes, end_stream: bool) -> DataTaken {
        let Some(slot) = self.slot(id) else { return DataTaken::NoStream };
        if let Some(left) = slot.length_left.get() {
            let n = data.len() as u64;
            if n > left || (end_stream && n != left) {
                return DataTaken::Malformed;
            }
            slot.length_left.set(Some(left - n));
        }
        if !data.is_empty() {
            slot.data.borrow_mut().push_back(data);
        }
        if end_stream {
            slot.recv_end.set(true);
        }
        wake(&slot.recv_waker);
        DataTaken::Yes
    }

    /// The request's trailers ended it; false when they came short of its
    /// `content-length` (malformed: the caller resets the stream).
    pub fn trailers(&self, id: u32, trailers: HeaderMap) -> bool {
        let Some(slot) = self.slot(id) else { return true };
        if slot.length_left.get().is_some_and(|left| left > 0) {
            return false;
        }
        *slot.trailers.borrow_mut() = Some(trailers);
        slot.recv_end.set(true);
        wake(&slot.recv_waker);
        true
    }

    /// The stream ended by RST_STREAM (the client's, or the codec's for a
    /// stream error); `by_peer` for the client's.
    pub fn reset(&self, id: u32, by_peer: bool) {
        if by_peer {
            self.stats.rx_reset.inc();
        } else {
            self.stats.tx_reset.inc();
        }
        let Some(slot) = forget(&mut self.streams.borrow_mut(), id) else {
            // Streams Courier never handed to a task (refused, malformed).
            self.stream_closed(true, false);
            return;
        };
        let Some(slot) = slot.upgrade() else { return };
        slot.gone(true);
        self.stream_closed(true, slot.started.elapsed() < PREMATURE_RESET_LIFETIME);
    }

    /// Resets a stream no task serves (a refused or malformed request).
    pub fn refuse(&self, id: u32, code: ErrorCode) {
        if self.conn.borrow_mut().reset_stream(id, code).is_ok() {
            self.stats.tx_reset.inc();
            self.stream_closed(true, true);
        }
    }

    pub fn window_opened(&self, id: u32) {
        if let Some(slot) = self.slot(id) {
            slot.window_opened.set(true);
            wake(&slot.send_waker);
        }
    }

    /// The client's SETTINGS_HEADER_TABLE_SIZE.
    pub fn peer_table_size(&self, size: u32) {
        self.encoder.borrow_mut().set_peer_table_size(size as usize);
    }

    fn stream_closed(&self, reset: bool, early: bool) {
        let mut p = self.premature.get();
        let verdict = p.stream_closed(reset && early);
        self.premature.set(p);
        if let Err(v) = verdict {
            self.violation.set(Some(v));
            self.output.notify_one();
        }
    }

    /// The premature-reset rule's verdict, once.
    pub fn take_violation(&self) -> Option<Violation> {
        self.violation.take()
    }

    /// `n` bytes of output were written.
    pub fn written(&self, n: usize) {
        self.conn.borrow_mut().advance_output(n);
        self.drained.notify_waiters();
    }

    /// Brings `http2.pending_send_bytes` up to date with the output queue.
    pub fn report_pending(&self) {
        let now = self.conn.borrow().pending_output_len();
        let before = self.pending_reported.replace(now);
        self.stats.pending_send_bytes.add(now as i64 - before as i64);
    }

    /// The connection is over: every stream's waits end.
    pub fn close(&self) {
        self.closed.set(true);
        let slots: Vec<_> = self.streams.borrow_mut().drain().filter_map(|(_, s)| s.upgrade()).collect();
        for slot in &slots {
            slot.gone(false);
        }
        self.drained.notify_waiters();
        drop(slots);
        let before = self.pending_reported.replace(0);
        self.stats.pending_send_bytes.sub(before as i64);
    }
}

/// Takes a stream out of the connection's table; the table's memory goes with
/// its last stream (an idle connection holds none).
fn forget(streams: &mut HashMap<u32, Weak<Slot>>, id: u32) -> Option<Weak<Slot>> {
    let slot = streams.remove(&id);
    if streams.is_empty() && streams.capacity() > 0 {
        *streams = HashMap::new();
    }
    slot
}

impl Drop for ConnShared {
    fn drop(&mut self) {
        let before = self.pending_reported.replace(0);
        self.stats.pending_send_bytes.sub(before as i64);
    }
}

fn wake(w: &Cell<Option<Waker>>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

fn register(w: &Cell<Option<Waker>>, cx: &Context<'_>) {
    match w.take() {
        Some(old) if old.will_wake(cx.waker()) => w.set(Some(old)),
        _ => w.set(Some(cx.waker().clone())),
    }
}

/// One open stream, as the loop feeds it.
pub struct Slot {
    id: u32,
    shared: Rc<ConnShared>,
    started: Instant,
    data: RefCell<VecDeque<Bytes>>,
    /// The client ended its side (END_STREAM or trailers).
    recv_end: Cell<bool>,
    /// What is left of the request's `content-length`.
    length_left: Cell<Option<u64>>,
    trailers: RefCell<Option<HeaderMap>>,
    /// Reset either way, or the connection went.
    reset: Cell<bool>,
    /// Courier's END_STREAM went.
    sent_end: Cell<bool>,
    window_opened: Cell<bool>,
    recv_waker: Cell<Option<Waker>>,
    send_waker: Cell<Option<Waker>>,
    reset_waker: Cell<Option<Waker>>,
}

impl Slot {
    /// The stream ended under its task: every wait ends.
    fn gone(&self, give_back: bool) {
        self.reset.set(true);
        let unread: usize = self.data.borrow_mut().drain(..).map(|d| d.len()).sum();
        if give_back && unread > 0 {
            let _ = self.shared.conn.borrow_mut().release(self.id, unread);
        }
        wake(&self.recv_waker);
        wake(&self.send_waker);
        wake(&self.reset_waker);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let shared = &self.shared;
        if let Ok(mut streams) = shared.streams.try_borrow_mut() {
            forget(&mut streams, self.id);
        }
        if self.reset.get() || shared.closed.get() {
            return;
        }
        let Ok(mut conn) = shared.conn.try_borrow_mut() else { return };
        let unread: usize = self.data.get_mut().iter().map(|d| d.len()).sum();
        if unread > 0 {
            let _ = conn.release(self.id, unread);
        }
        let code = if self.sent_end.get() { ErrorCode::NO_ERROR } else { ErrorCode::CANCEL };
        let reset = conn.reset_stream(self.id, code).is_ok();
        drop(conn);
        if reset {
            shared.stats.tx_reset.inc();
        }
        let early = reset && code == ErrorCode::CANCEL && self.started.elapsed() < PREMATURE_RESET_LIFETIME;
        shared.stream_closed(reset, early);
        shared.output.notify_one();
    }
}

/// A stream's task's (and its request body's) hold on the stream.
#[derive(Clone)]
pub struct StreamHandle {
    slot: Rc<Slot>,
}

impl StreamHandle {
    fn shared(&self) -> &ConnShared {
        &self.slot.shared
    }

    fn check(&self) -> Result<(), StreamGone> {
        if self.slot.reset.get() || self.shared().closed.get() {
            return Err(StreamGone);
        }
        Ok(())
    }

    // -- the request --

    /// The next request body bytes; `None` at the end of the body.
    pub fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamGone>>> {
        let s = &self.slot;
        if let Some(d) = s.data.borrow_mut().pop_front() {
            return Poll::Ready(Some(Ok(d)));
        }
        if s.reset.get() {
            return Poll::Ready(Some(Err(StreamGone)));
        }
        if s.recv_end.get() {
            return Poll::Ready(None);
        }
        register(&s.recv_waker, cx);
        Poll::Pending
    }

    /// `n` body bytes were consumed: their window goes back to the client.
    pub fn release(&self, n: usize) {
        if n == 0 || self.check().is_err() {
            return;
        }
        let _ = self.shared().conn.borrow_mut().release(self.slot.id, n);
        self.shared().output.notify_one();
    }

    /// The request's trailers, once its body was read to the end.
    pub fn take_trailers(&self) -> Option<HeaderMap> {
        self.slot.trailers.borrow_mut().take()
    }

    /// Nothing more will come from the client (trailers included).
    pub fn is_end_stream(&self) -> bool {
        let s = &self.slot;
        s.recv_end.get() && s.data.borrow().is_empty() && s.trailers.borrow().is_none()
    }

    /// Ready once the stream was reset (or its connection went).
    pub fn poll_reset(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.check().is_err() {
            return Poll::Ready(());
        }
        register(&self.slot.reset_waker, cx);
        Poll::Pending
    }

    // -- the response --

    /// Sends the response head (or a 1xx); `end` when nothing follows.
    pub fn send_head(&self, status: http::StatusCode, headers: &HeaderMap, end: bool) -> Result<(), StreamGone> {
        self.check()?;
        let mut block = BytesMut::with_capacity(block_bound(headers));
        {
            let mut enc = self.shared().encoder.borrow_mut();
            enc.begin_block(&mut block);
            enc.field(b":status", status.as_str().as_bytes(), false, &mut block);
            for (name, value) in headers {
                enc.field(name.as_str().as_bytes(), value.as_bytes(), value.is_sensitive(), &mut block);
            }
        }
        self.send_block(block.freeze(), end)
    }

    /// Sends the response's trailers, ending the stream.
    pub fn send_trailers(&self, trailers: &HeaderMap) -> Result<(), StreamGone> {
        self.check()?;
        let mut block = BytesMut::with_capacity(block_bound(trailers));
        {
            let mut enc = self.shared().encoder.borrow_mut();
            enc.begin_block(&mut block);
            for (name, value) in trailers {
                enc.field(name.as_str().as_bytes(), value.as_bytes(), value.is_sensitive(), &mut block);
            }
        }
        self.send_block(block.freeze(), true)
    }

    fn send_block(&self, block: Bytes, end: bool) -> Result<(), StreamGone> {
        let sent = self.shared().conn.borrow_mut().send_headers(self.slot.id, block, end);
        self.shared().output.notify_one();
        sent?;
        if end {
            self.slot.sent_end.set(true);
        }
        Ok(())
    }

    /// Sends what the windows allow of `data` (advanced past it); `end` ends
    /// the stream with its last byte.
    pub fn send_data(&self, data: &mut Bytes, end: bool) -> Result<(), StreamGone> {
        self.check()?;
        self.slot.window_opened.set(false);
        let sent = self.shared().conn.borrow_mut().send_data(self.slot.id, data, end);
        self.shared().output.notify_one();
        sent?;
        if end && data.is_empty() {
            self.slot.sent_end.set(true);
        }
        Ok(())
    }

    /// Waits until window opens after a `send_data` that could not send all.
    pub async fn window(&self) {
        std::future::poll_fn(|cx| {
            if self.slot.window_opened.get() || self.check().is_err() {
                return Poll::Ready(());
            }
            register(&self.slot.send_waker, cx);
            Poll::Pending
        })
        .await
    }

    /// Resets the stream.
    pub fn send_reset(&self, code: ErrorCode) {
        if self.check().is_err() {
            return;
        }
        let shared = self.shared();
        let reset = shared.conn.borrow_mut().reset_stream(self.slot.id, code).is_ok();
        self.slot.gone(true);
        if reset {
            shared.stats.tx_reset.inc();
            shared.stream_closed(true, self.slot.started.elapsed() < PREMATURE_RESET_LIFETIME);
        }
        shared.output.notify_one();
    }

    /// Bytes the connection has queued to write.
    pub fn pending_send(&self) -> u64 {
        self.shared().conn.borrow().pending_output_len() as u64
    }

    /// Waits until fewer than `limit` bytes are queued to write.
    pub async fn wait_below(&self, limit: u64) {
        let shared = self.shared();
        loop {
            let drained = shared.drained.notified();
            let mut drained = std::pin::pin!(drained);
            drained.as_mut().enable();
            if self.pending_send() < limit || shared.closed.get() {
                return;
            }
            drained.await;
        }
    }
}

/// Room for a header block of `headers` (and a `:status`): each field as
/// literals, the worst case, with room for its integers, and two size
/// updates. The block is allocated once instead of regrown as it is encoded
/// (a bound in practice; a block past it still grows).
fn block_bound(headers: &HeaderMap) -> usize {
    const PER_FIELD: usize = 10;
    let fields: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + PER_FIELD).sum();
    fields + 2 * PER_FIELD + ":status".len() + 3
}
