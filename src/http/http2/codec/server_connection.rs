//! The server side of one HTTP/2 connection as a state machine without I/O:
//! the caller hands it the bytes it read (`recv`) and gets events; it issues
//! commands (send headers, data, trailers, reset, GOAWAY, PING) and writes what
//! `pending_output` holds. Everything RFC 9113 asks of a server beyond HPACK is
//! here: the preface and the first SETTINGS, SETTINGS and their ACK, stream
//! states with the error codes §5.1 names, header blocks assembled from
//! CONTINUATIONs under a size and a frame-count bound (CVE-2024-27919),
//! flow control both ways, SETTINGS_MAX_CONCURRENT_STREAMS, PING and GOAWAY.
//! Envoy's inbound limits (`flood_limits`) and its outbound queue limits
//! (`outbound_queue`) give verdicts here as connection errors.
//!
//! No clock: the premature-reset rule stays with the caller (`Event::Reset`
//! and its own END_STREAMs tell it every stream that ends), so tests drive the
//! machine with raw frames and no time.

use bytes::{Bytes, BytesMut};

use super::error_code::{ConnectionError, ErrorCode, FrameError};
use super::event::{Event, SendError};
use super::frame::{self, flow_controlled_len, kind, Frame, FrameHeader};
use super::outbound_queue::OutboundQueue;
use super::settings::{self, PeerSettings, DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE};
use super::stream_table::{Closed, StreamTable};
use crate::http::http2::flood_limits::InboundFrameLimits;
use crate::http::http2::options::Http2Options;
use crate::http::http2::violation::Violation;

/// The client connection preface (§3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// CONTINUATION frames allowed in one header block (CVE-2024-27919): Envoy
/// 1.40 answers a request in 512 and closes the connection at the 513th
/// (checked by running it; it writes no GOAWAY the client sees, this codec
/// queues GOAWAY ENHANCE_YOUR_CALM).
pub const MAX_CONTINUATION_FRAMES: u32 = 512;
/// The frame size the server announces (the RFC's default; Envoy's too).
const LOCAL_MAX_FRAME_SIZE: u32 = frame::DEFAULT_MAX_FRAME_SIZE;

/// What every connection of one connection manager is configured with, built
/// once with its config (`ServerConfig::new`) and borrowed by each connection:
/// the SETTINGS payload and the inbound limits are ready, so a new connection
/// copies a few words and does no config work.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub options: Http2Options,
    /// `max_request_headers_kb` in bytes: the bound on an encoded header block.
    pub max_header_block: usize,
    /// The server's SETTINGS payload.
    settings: Bytes,
    /// The inbound limits with nothing counted yet.
    limits: InboundFrameLimits,
}

impl ServerConfig {
    pub fn new(options: Http2Options, max_header_block: usize) -> ServerConfig {
        let settings = settings::server_settings(&options).freeze();
        let limits = InboundFrameLimits::new(&options);
        ServerConfig { options, max_header_block, settings, limits }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// This many bytes of the preface have been seen.
    Preface(u8),
    /// The preface came; the next frame must be SETTINGS.
    FirstSettings,
    Open,
    Failed(ConnectionError),
}

/// A header block waiting for its CONTINUATIONs.
#[derive(Debug)]
struct PartialBlock {
    stream: u32,
    end_stream: bool,
    self_dependent: bool,
    parts: BytesMut,
    continuations: u32,
}

pub struct ServerConnection {
    phase: Phase,
    peer: PeerSettings,
    max_concurrent_streams: u32,
    stream_window: u32,
    max_header_block: usize,
    streams: StreamTable,
    /// The highest stream id the client used.
    last_peer_stream: u32,
    conn_send: super::flow_window::SendWindow,
    conn_recv: super::flow_window::RecvWindow,
    /// The last stream id of the GOAWAY sent, if one was.
    goaway_last: Option<u32>,
    partial: Option<Box<PartialBlock>>,
    limits: InboundFrameLimits,
    out: OutboundQueue,
}

impl ServerConnection {
    /// A connection whose first bytes out are the server's SETTINGS and the
    /// connection window's raise to `initial_connection_window_size`.
    pub fn new(config: &ServerConfig) -> ServerConnection {
        let o = &config.options;
        let conn_window = o.initial_connection_window_size.clamp(DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE);
        let mut c = ServerConnection {
            phase: Phase::Preface(0),
            peer: PeerSettings::default(),
            max_concurrent_streams: o.max_concurrent_streams,
            stream_window: o.initial_stream_window_size.min(MAX_WINDOW_SIZE),
            max_header_block: config.max_header_block,
            streams: StreamTable::default(),
            last_peer_stream: 0,
            conn_send: super::flow_window::SendWindow::new(DEFAULT_WINDOW_SIZE),
            conn_recv: super::flow_window::RecvWindow::new(conn_window),
            goaway_last: None,
            partial: None,
            limits: config.limits,
            out: OutboundQueue::new(o.max_outbound_frames, o.max_outbound_control_frames),
        };
        let params = config.settings.clone();
        // Two frames into an empty queue are within any limit.
        let _ = c.out.push(&Frame::Settings { ack: false, params });
        if conn_window > DEFAULT_WINDOW_SIZE {
            let _ = c.out.push(&Frame::WindowUpdate { stream: 0, increment: conn_window - DEFAULT_WINDOW_SIZE });
        }
        c
    }

    /// Reads the frames whole in `input` (what is left is a partial frame, for
    /// the next read), reporting what they mean in `events`. On `Err` the
    /// connection is over: a GOAWAY is queued when Envoy sends one
    /// (`ConnectionError::sends_goaway`) and every later call fails the same.
    pub fn recv(&mut self, input: &mut BytesMut, events: &mut Vec<Event>) -> Result<(), ConnectionError> {
        loop {
            match self.phase {
                Phase::Failed(e) => return Err(e),
                Phase::Preface(seen) => {
                    let seen = usize::from(seen);
                    let n = (PREFACE.len() - seen).min(input.len());
                    if input[..n] != PREFACE[seen..seen + n] {
                        return Err(self.fail(ConnectionError::silent(
                            ErrorCode::PROTOCOL_ERROR,
                            "not the HTTP/2 connection preface",
                        )));
                    }
                    let _ = input.split_to(n);
                    if seen + n < PREFACE.len() {
                        self.phase = Phase::Preface((seen + n) as u8);
                        return Ok(());
                    }
                    self.phase = Phase::FirstSettings;
                }
                Phase::FirstSettings | Phase::Open => {
                    let first = self.phase == Phase::FirstSettings;
                    if let Some(h) = FrameHeader::read(input) {
                        if first && (h.kind != kind::SETTINGS || h.flags & frame::flag::ACK != 0) {
                            return Err(self.fail(ConnectionError::Limit(Violation::NoSettingsFirst)));
                        }
                    }
                    let decoded = match frame::decode(input, LOCAL_MAX_FRAME_SIZE) {
                        Ok(Some(f)) => Ok(f),
                        Ok(None) => return Ok(()),
                        Err(e) => Err(e),
                    };
                    self.phase = Phase::Open;
                    let result = match decoded {
                        Ok((h, f)) => self.on_frame(h, f, events),
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(()) => {}
                        Err(FrameError::Connection(e)) => return Err(self.fail(e)),
                        Err(FrameError::Stream { .. }) if self.partial.is_some() => {
                            return Err(
                                self.fail(ConnectionError::protocol("a header block interrupted by another frame"))
                            );
                        }
                        Err(FrameError::Stream { stream, code }) => {
                            if stream > self.last_peer_stream {
                                // No RST_STREAM on an idle stream (§5.1).
                                return Err(self.fail(ConnectionError::Protocol {
                                    code,
                                    what: "stream error on an idle stream",
                                    goaway: true,
                                }));
                            }
                            self.stream_error(stream, code, events)?;
                        }
                    }
                }
            }
        }
    }

    /// Ends the connection for `e`, queueing its GOAWAY if it has one.
    fn fail(&mut self, e: ConnectionError) -> ConnectionError {
        if matches!(self.phase, Phase::Failed(_)) {
            return e;
        }
        self.phase = Phase::Failed(e);
        if e.sends_goaway() {
            let last_stream = self.goaway_last.unwrap_or(self.last_peer_stream).min(self.last_peer_stream);
            let _ = self.out.push(&Frame::GoAway { last_stream, code: e.code(), debug: Bytes::new() });
        }
        e
    }

    /// Queues a frame the codec itself answers with; an outbound flood ends the
    /// connection.
    fn queue(&mut self, f: &Frame) -> Result<(), ConnectionError> {
        match self.out.push(f) {
            Ok(()) => Ok(()),
            Err(v) => Err(self.fail(ConnectionError::Limit(v))),
        }
    }

    fn on_frame(&mut self, h: FrameHeader, f: Frame, events: &mut Vec<Event>) -> Result<(), FrameError> {
        let opens = h.kind == kind::HEADERS && h.stream > self.last_peer_stream;
        self.limits.frame(h.kind, h.flags, h.length, opens).map_err(ConnectionError::Limit)?;
        if let Some(partial) = &self.partial {
            match &f {
                Frame::Continuation { stream, .. } if *stream == partial.stream => {}
                _ => return Err(ConnectionError::protocol("a header block interrupted by another frame").into()),
            }
        }
        match f {
            Frame::Data { stream, data, end_stream, padding } => {
                debug_assert_eq!(flow_controlled_len(&data, padding), h.length);
                self.on_data(stream, data, end_stream, h.length, events)
            }
            Frame::Headers { stream, priority, block, end_stream, end_headers, .. } => {
                if stream % 2 == 0 {
                    return Err(
                        ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, "a client stream with an even id").into()
                    );
                }
                let self_dependent = priority.is_some_and(|p| p.dependency == stream);
                self.check_block_size(block.len())?;
                let mut partial =
                    PartialBlock { stream, end_stream, self_dependent, parts: BytesMut::new(), continuations: 0 };
                if end_headers {
                    return self.on_header_block(partial, block, events);
                }
                partial.parts.extend_from_slice(&block);
                self.partial = Some(Box::new(partial));
                Ok(())
            }
            Frame::Continuation { block, end_headers, .. } => {
                let Some(mut partial) = self.partial.take() else {
                    return Err(ConnectionError::protocol("CONTINUATION outside a header block").into());
                };
                partial.continuations += 1;
                if partial.continuations > MAX_CONTINUATION_FRAMES {
                    return Err(ConnectionError::Limit(Violation::ContinuationFrames).into());
                }
                self.check_block_size(partial.parts.len() + block.len())?;
                partial.parts.extend_from_slice(&block);
                if end_headers {
                    let block = std::mem::take(&mut partial.parts).freeze();
                    return self.on_header_block(*partial, block, events);
                }
                self.partial = Some(partial);
                Ok(())
            }
            // Priority signals are read and checked (in `frame`), then ignored.
            Frame::Priority { .. } => Ok(()),
            Frame::RstStream { stream, code } => {
                if stream > self.last_peer_stream {
                    return Err(
                        ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, "RST_STREAM on an idle stream").into()
                    );
                }
                if self.streams.close(stream, false).is_some() {
                    events.push(Event::Reset { stream, code, by_peer: true });
                }
                Ok(())
            }
            Frame::Settings { ack: true, .. } => {
                events.push(Event::SettingsAcked);
                Ok(())
            }
            Frame::Settings { ack: false, params } => self.on_settings(&params, events),
            Frame::PushPromise { .. } => {
                Err(ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, "PUSH_PROMISE from a client").into())
            }
            Frame::Ping { ack: true, payload } => {
                events.push(Event::PingAck { payload });
                Ok(())
            }
            Frame::Ping { ack: false, payload } => {
                self.queue(&Frame::Ping { ack: true, payload })?;
                Ok(())
            }
            Frame::GoAway { last_stream, code, debug } => {
                events.push(Event::GoAway { last_stream, code, debug });
                Ok(())
            }
            Frame::WindowUpdate { stream: 0, increment } => {
                let was_shut = self.conn_send.available() == 0;
                if self.conn_send.adjust(i64::from(increment)).is_err() {
                    return Err(ConnectionError::silent(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "connection window above 2^31-1",
                    )
                    .into());
                }
                if was_shut {
                    self.wake_blocked(events);
                }
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream > self.last_peer_stream {
                    return Err(
                        ConnectionError::silent(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream").into()
                    );
                }
                let conn_open = self.conn_send.available() > 0;
                let Some(s) = self.streams.get_mut(stream) else { return Ok(()) };
                if s.send.adjust(i64::from(increment)).is_err() {
                    // A stream error by §6.9.1; Envoy 1.40 closes the
                    // connection, with no GOAWAY (checked by running it).
                    let what = "a stream window above 2^31-1";
                    return Err(ConnectionError::silent(ErrorCode::FLOW_CONTROL_ERROR, what).into());
                }
                if s.send_blocked && conn_open && s.send.available() > 0 {
                    s.send_blocked = false;
                    events.push(Event::SendWindowOpened { stream });
                }
                Ok(())
            }
            Frame::Unknown { .. } => Ok(()),
        }
    }

    fn check_block_size(&self, size: usize) -> Result<(), ConnectionError> {
        if size > self.max_header_block {
            return Err(ConnectionError::Limit(Violation::HeaderBlockTooLarge));
        }
        Ok(())
    }

    /// A complete header block on `partial.stream`.
    fn on_header_block(
        &mut self,
        partial: PartialBlock,
        block: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        let PartialBlock { stream, end_stream, self_dependent, .. } = partial;
        if let Some(s) = self.streams.get_mut(stream) {
            // Trailers, or a HEADERS that has no place on this stream: a second
            // HEADERS without END_STREAM is malformed (§8.1).
            let code = if self_dependent || (!s.recv_closed && !end_stream) {
                Some(ErrorCode::PROTOCOL_ERROR)
            } else if s.recv_closed {
                Some(ErrorCode::STREAM_CLOSED)
            } else {
                None
            };
            if let Some(code) = code {
                events.push(Event::DiscardHeaderBlock { block });
                if code == ErrorCode::STREAM_CLOSED {
                    // A stream error by §5.1; Envoy 1.40 closes the connection,
                    // with no GOAWAY (checked by running it).
                    return Err(ConnectionError::silent(code, "HEADERS after END_STREAM").into());
                }
                return Err(FrameError::Stream { stream, code });
            }
            s.recv_closed = true;
            events.push(Event::Trailers { stream, block });
            self.close_if_done(stream);
            return Ok(());
        }
        if stream <= self.last_peer_stream {
            events.push(Event::DiscardHeaderBlock { block });
            if self.closed_by_us(stream) {
                return Ok(());
            }
            return match self.streams.closed(stream) {
                // A closed stream's late HEADERS are ignored, as Envoy 1.40 does
                // (no RST_STREAM; RFC 9113 §5.1 allows either).
                Closed::ResetByUs | Closed::Other => Ok(()),
                Closed::Unknown => Err(ConnectionError::protocol("a stream id not above the last one used").into()),
            };
        }
        self.last_peer_stream = stream;
        if self.goaway_last.is_some_and(|last| stream > last) {
            // Above the GOAWAY's last stream id: not processed (§6.8).
            events.push(Event::DiscardHeaderBlock { block });
            return Ok(());
        }
        if self_dependent {
            events.push(Event::DiscardHeaderBlock { block });
            self.streams.remember(stream, true);
            events.push(Event::SelfDependentStream { stream });
            return Ok(());
        }
        if self.streams.len() >= self.max_concurrent_streams as usize {
            events.push(Event::DiscardHeaderBlock { block });
            self.streams.remember(stream, true);
            self.queue(&Frame::RstStream { stream, code: ErrorCode::REFUSED_STREAM })?;
            // The caller counts the RST_STREAM (`http2.tx_reset`); no stream was reported.
            events.push(Event::Reset { stream, code: ErrorCode::REFUSED_STREAM, by_peer: false });
            return Ok(());
        }
        self.streams.open(stream, self.peer.initial_window_size, self.stream_window);
        if end_stream {
            if let Some(s) = self.streams.get_mut(stream) {
                s.recv_closed = true;
            }
        }
        events.push(Event::Headers { stream, block, end_stream });
        Ok(())
    }

    fn on_data(
        &mut self,
        stream: u32,
        data: Bytes,
        end_stream: bool,
        flow_len: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), FrameError> {
        if stream > self.last_peer_stream {
            return Err(ConnectionError::protocol("DATA on an idle stream").into());
        }
        if self.conn_recv.receive(flow_len).is_err() {
            return Err(ConnectionError::Protocol {
                code: ErrorCode::FLOW_CONTROL_ERROR,
                what: "DATA beyond the connection window",
                goaway: true,
            }
            .into());
        }
        let padding = flow_len - data.len() as u32;
        if self.streams.get(stream).is_none() {
            // Closed: the server reset it, it is above the GOAWAY's last stream
            // id (the client may not have seen that yet, §5.1, §6.8), or it
            // ended; Envoy 1.40 ignores DATA on a closed stream, whichever.
            self.release_connection(flow_len)?;
            return Ok(());
        }
        let mut stream_update = None;
        let outcome = match self.streams.get_mut(stream) {
            Some(s) if !s.recv_closed => {
                if s.recv.receive(flow_len).is_err() {
                    Err(ErrorCode::FLOW_CONTROL_ERROR)
                } else {
                    // Padding is consumed on arrival.
                    if padding > 0 && !end_stream {
                        stream_update = s.recv.release(padding);
                    }
                    Ok(())
                }
            }
            _ => Err(ErrorCode::STREAM_CLOSED),
        };
        if let Some(increment) = stream_update {
            self.queue(&Frame::WindowUpdate { stream, increment })?;
        }
        match outcome {
            Ok(()) => {
                self.release_connection(padding)?;
                if end_stream {
                    if let Some(s) = self.streams.get_mut(stream) {
                        s.recv_closed = true;
                    }
                }
                events.push(Event::Data { stream, data, end_stream });
                if end_stream {
                    self.close_if_done(stream);
                }
                Ok(())
            }
            Err(code) => {
                // Nobody will consume these bytes.
                self.release_connection(flow_len)?;
                if code == ErrorCode::STREAM_CLOSED {
                    // A stream error by §5.1; Envoy 1.40 ends the connection
                    // with GOAWAY STREAM_CLOSED (checked by running it).
                    let what = "DATA after END_STREAM";
                    return Err(ConnectionError::Protocol { code, what, goaway: true }.into());
                }
                Err(FrameError::Stream { stream, code })
            }
        }
    }

    fn on_settings(&mut self, params: &[u8], events: &mut Vec<Event>) -> Result<(), FrameError> {
        let before = self.peer.initial_window_size;
        self.peer.apply(params)?;
        let delta = i64::from(self.peer.initial_window_size) - i64::from(before);
        if delta != 0 {
            let conn_open = self.conn_send.available() > 0;
            for s in self.streams.iter_mut() {
                if s.send.adjust(delta).is_err() {
                    return Err(ConnectionError::Protocol {
                        code: ErrorCode::FLOW_CONTROL_ERROR,
                        what: "SETTINGS_INITIAL_WINDOW_SIZE takes a stream window above 2^31-1",
                        goaway: true,
                    }
                    .into());
                }
                if delta > 0 && s.send_blocked && conn_open && s.send.available() > 0 {
                    s.send_blocked = false;
                    events.push(Event::SendWindowOpened { stream: s.id });
                }
            }
        }
        self.queue(&Frame::Settings { ack: true, params: Bytes::new() })?;
        events.push(Event::Settings(self.peer));
        Ok(())
    }

    /// Frames on `stream` (not open) are to be ignored: the server reset it, or
    /// it is above the last stream id of the GOAWAY sent.
    fn closed_by_us(&self, stream: u32) -> bool {
        self.goaway_last.is_some_and(|last| stream > last) || self.streams.closed(stream) == Closed::ResetByUs
    }

    /// The connection's window opened: every blocked stream with window may go.
    fn wake_blocked(&mut self, events: &mut Vec<Event>) {
        for s in self.streams.iter_mut() {
            if s.send_blocked && s.send.available() > 0 {
                s.send_blocked = false;
                events.push(Event::SendWindowOpened { stream: s.id });
            }
        }
    }

    /// A stream error the codec found: RST_STREAM, and the stream is gone.
    fn stream_error(&mut self, stream: u32, code: ErrorCode, events: &mut Vec<Event>) -> Result<(), ConnectionError> {
        if self.streams.close(stream, true).is_some() {
            events.push(Event::Reset { stream, code, by_peer: false });
        } else {
            events.push(Event::ResetSent { stream, code });
        }
        self.queue(&Frame::RstStream { stream, code })
    }

    /// Gives back connection window for bytes nobody will consume.
    fn release_connection(&mut self, n: u32) -> Result<(), ConnectionError> {
        if n == 0 {
            return Ok(());
        }
        match self.conn_recv.release(n) {
            Some(increment) => self.queue(&Frame::WindowUpdate { stream: 0, increment }),
            None => Ok(()),
        }
    }

    fn close_if_done(&mut self, stream: u32) {
        if self.streams.get(stream).is_some_and(|s| s.recv_closed && s.send_closed) {
            self.streams.close(stream, false);
        }
    }

    fn check_open(&self) -> Result<(), SendError> {
        match self.phase {
            Phase::Failed(_) => Err(SendError::ConnectionClosed),
            _ => Ok(()),
        }
    }

    /// Queues a frame for a command; an outbound flood ends the connection.
    fn queue_command(&mut self, f: &Frame) -> Result<(), SendError> {
        self.queue(f).map_err(|_| SendError::ConnectionClosed)
    }

    // -- commands --

    /// Sends a stream's response header block (HEADERS, then CONTINUATIONs for
    /// what the client's SETTINGS_MAX_FRAME_SIZE does not fit).
    pub fn send_headers(&mut self, stream: u32, block: Bytes, end_stream: bool) -> Result<(), SendError> {
        self.check_open()?;
        match self.streams.get_mut(stream) {
            Some(s) if !s.send_closed => s.send_closed = end_stream,
            _ => return Err(SendError::StreamNotWritable),
        }
        let max = self.peer.max_frame_size as usize;
        let mut rest = block;
        let first = rest.split_to(rest.len().min(max));
        self.queue_command(&Frame::Headers {
            stream,
            priority: None,
            block: first,
            end_stream,
            end_headers: rest.is_empty(),
            padding: None,
        })?;
        while !rest.is_empty() {
            let part = rest.split_to(rest.len().min(max));
            self.queue_command(&Frame::Continuation { stream, block: part, end_headers: rest.is_empty() })?;
        }
        if end_stream {
            self.close_if_done(stream);
        }
        Ok(())
    }

    /// Sends what the windows allow of `data` from its front (it is advanced
    /// past what was taken) in frames of the client's SETTINGS_MAX_FRAME_SIZE,
    /// with END_STREAM on the last when `end_stream` and all of it went.
    /// Returns the bytes taken; when fewer than given, `SendWindowOpened` says
    /// when to try again.
    pub fn send_data(&mut self, stream: u32, data: &mut Bytes, end_stream: bool) -> Result<usize, SendError> {
        self.check_open()?;
        let conn_window = self.conn_send.available();
        let Some(s) = self.streams.get_mut(stream).filter(|s| !s.send_closed) else {
            return Err(SendError::StreamNotWritable);
        };
        let window = conn_window.min(s.send.available()) as usize;
        let n = data.len().min(window);
        let all = n == data.len();
        s.send.consume(n as u32);
        if !all {
            s.send_blocked = true;
        }
        if all && end_stream {
            s.send_closed = true;
        }
        self.conn_send.consume(n as u32);
        let mut taken = data.split_to(n);
        let max = self.peer.max_frame_size as usize;
        loop {
            let part = taken.split_to(taken.len().min(max));
            let last = taken.is_empty();
            if part.is_empty() && !(last && all && end_stream) {
                break;
            }
            self.limits.data_frame_sent();
            self.queue_command(&Frame::Data {
                stream,
                data: part,
                end_stream: last && all && end_stream,
                padding: None,
            })?;
            if last {
                break;
            }
        }
        if all && end_stream {
            self.close_if_done(stream);
        }
        Ok(n)
    }

    /// Sends the response's trailers, ending the stream.
    pub fn send_trailers(&mut self, stream: u32, block: Bytes) -> Result<(), SendError> {
        self.send_headers(stream, block, true)
    }

    /// Ends a stream with RST_STREAM. No `Event::Reset` follows.
    pub fn reset_stream(&mut self, stream: u32, code: ErrorCode) -> Result<(), SendError> {
        self.check_open()?;
        if self.streams.close(stream, true).is_none() {
            return Err(SendError::StreamNotWritable);
        }
        self.queue_command(&Frame::RstStream { stream, code })
    }

    /// Sends GOAWAY: streams above `last_stream` are not processed from now on
    /// (their header blocks come as `DiscardHeaderBlock`). A later GOAWAY may
    /// lower the id, never raise it (Envoy's graceful drain sends 2^31-1, then
    /// the last stream id).
    pub fn go_away(&mut self, last_stream: u32, code: ErrorCode, debug: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        let last_stream = self.goaway_last.map_or(last_stream, |l| l.min(last_stream));
        self.goaway_last = Some(last_stream);
        self.queue_command(&Frame::GoAway { last_stream, code, debug })
    }

    pub fn ping(&mut self, payload: [u8; 8]) -> Result<(), SendError> {
        self.check_open()?;
        self.queue_command(&Frame::Ping { ack: false, payload })
    }

    /// The caller consumed `n` bytes of a stream's `Data`: their window goes
    /// back to the client (WINDOW_UPDATE once half a window is due).
    pub fn release(&mut self, stream: u32, n: usize) -> Result<(), SendError> {
        self.check_open()?;
        let n = n.min(u32::MAX as usize) as u32;
        let stream_update = match self.streams.get_mut(stream) {
            Some(s) if !s.recv_closed => s.recv.release(n),
            _ => None,
        };
        if let Some(increment) = stream_update {
            self.queue_command(&Frame::WindowUpdate { stream, increment })?;
        }
        self.release_connection(n).map_err(|_| SendError::ConnectionClosed)
    }

    // -- output and state --

    /// The next bytes to write to the client: write them, `advance_output`,
    /// and ask again until empty (a large DATA payload is its own piece, not
    /// copied into the buffer).
    pub fn pending_output(&self) -> &[u8] {
        self.out.pending()
    }

    /// `n` bytes of `pending_output` were written.
    pub fn advance_output(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Bytes queued to write, in all pieces.
    pub fn pending_output_len(&self) -> usize {
        self.out.len()
    }

    /// Frames queued and not written yet (`max_outbound_frames` counts these)...
    pub fn outbound_frames(&self) -> usize {
        self.out.frames()
    }

    /// ...and of them, PING ACK, SETTINGS ACK and RST_STREAM
    /// (`max_outbound_control_frames`).
    pub fn outbound_control_frames(&self) -> u32 {
        self.out.control_frames()
    }

    /// The highest stream id the client used (for a GOAWAY).
    pub fn last_peer_stream(&self) -> u32 {
        self.last_peer_stream
    }

    /// Streams open or half-closed.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    pub fn peer_settings(&self) -> &PeerSettings {
        &self.peer
    }

    /// What `send_data` would take on `stream` now.
    pub fn send_window(&self, stream: u32) -> usize {
        let stream_window = self.streams.get(stream).map_or(0, |s| s.send.available());
        stream_window.min(self.conn_send.available()) as usize
    }

    /// What the client may still send on the connection.
    pub fn connection_recv_window(&self) -> u32 {
        self.conn_recv.open()
    }

    /// The connection error it ended with, if it did.
    pub fn error(&self) -> Option<ConnectionError> {
        match self.phase {
            Phase::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Streams open or half-closed, by id (oldest first).
    pub fn stream_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.ids()
    }
}
