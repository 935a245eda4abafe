//! The server connection driven with raw frames, one rule per test, named after
//! the tests/h2conformance case it mirrors where there is one.

use bytes::{Bytes, BytesMut};

use super::frame::{self, flag, kind, Frame, FrameHeader, Priority};
use super::server_connection::MAX_CONTINUATION_FRAMES;
use super::settings::id;
use super::*;
use crate::http::http2::violation::Violation;
use crate::http::http2::Http2Options;

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameHeader { length: payload.len() as u32, kind, flags, stream }.write(&mut out);
    out.extend_from_slice(payload);
    out.to_vec()
}

fn settings(entries: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (i, v) in entries {
        p.extend_from_slice(&i.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    raw(kind::SETTINGS, 0, 0, &p)
}

fn headers(stream: u32, end_stream: bool) -> Vec<u8> {
    let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
    raw(kind::HEADERS, flags, stream, b"block")
}

fn data(stream: u32, body: &[u8], end_stream: bool) -> Vec<u8> {
    raw(kind::DATA, if end_stream { flag::END_STREAM } else { 0 }, stream, body)
}

fn rst(stream: u32, code: ErrorCode) -> Vec<u8> {
    raw(kind::RST_STREAM, 0, stream, &code.0.to_be_bytes())
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    raw(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

fn ping(payload: &[u8; 8]) -> Vec<u8> {
    raw(kind::PING, 0, 0, payload)
}

/// A client: the server connection, what it reported, what it wrote.
struct Client {
    c: ServerConnection,
    events: Vec<Event>,
}

impl Client {
    fn with(options: Http2Options, client_settings: &[(u16, u32)]) -> Client {
        let c = ServerConnection::new(&ServerConfig::new(options, 16 * 1024));
        let mut client = Client { c, events: Vec::new() };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(client_settings));
        client.send(&hello).unwrap();
        client.written();
        client.events.clear();
        client
    }

    fn new() -> Client {
        Client::with(Http2Options::default(), &[])
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        let mut input = BytesMut::from(bytes);
        let r = self.c.recv(&mut input, &mut self.events);
        if r.is_ok() {
            assert!(input.is_empty(), "a whole frame left unread");
        }
        r
    }

    /// The frames written since the last call.
    fn written(&mut self) -> Vec<Frame> {
        let mut out = BytesMut::new();
        while !self.c.pending_output().is_empty() {
            out.extend_from_slice(self.c.pending_output());
            let n = self.c.pending_output().len();
            self.c.advance_output(n);
        }
        let mut frames = Vec::new();
        while let Some((_, f)) = frame::decode(&mut out, frame::MAX_MAX_FRAME_SIZE).unwrap() {
            frames.push(f);
        }
        frames
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// A GOAWAY with `code` is the last thing written.
    fn assert_goaway(&mut self, code: ErrorCode) {
        let frames = self.written();
        match frames.last() {
            Some(Frame::GoAway { code: c, .. }) => assert_eq!(*c, code, "{frames:?}"),
            _ => panic!("no GOAWAY {code:?} in {frames:?}"),
        }
    }

    fn assert_conn_error(&mut self, bytes: &[u8], code: ErrorCode) {
        let e = self.send(bytes).unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        self.assert_goaway(code);
    }

    /// A connection error Envoy 1.40 closes on with no GOAWAY.
    fn assert_silent_conn_error(&mut self, bytes: &[u8], code: ErrorCode) {
        let e = self.send(bytes).unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(!e.sends_goaway(), "{e:?}");
        let frames = self.written();
        assert!(!frames.iter().any(|f| matches!(f, Frame::GoAway { .. })), "{frames:?}");
    }

    /// `stream` was reset with `code` and the connection goes on.
    /// `bytes` are ignored: nothing is written for them and the connection stays up.
    fn assert_ignored(&mut self, bytes: &[u8]) {
        self.send(bytes).unwrap();
        self.send(&ping(b"still up")).unwrap();
        assert_eq!(self.written(), [Frame::Ping { ack: true, payload: *b"still up" }]);
    }

    fn assert_stream_error(&mut self, bytes: &[u8], stream: u32, code: ErrorCode) {
        self.send(bytes).unwrap();
        let frames = self.written();
        assert!(frames.contains(&Frame::RstStream { stream, code }), "want RST_STREAM {code:?}: {frames:?}");
        self.send(&ping(b"still up")).unwrap();
        assert!(self.written().contains(&Frame::Ping { ack: true, payload: *b"still up" }));
    }
}

// -- frames --

#[test]
fn every_frame_type_reads_back_what_was_written() {
    let frames = [
        Frame::Data { stream: 1, data: Bytes::from_static(b"body"), end_stream: true, padding: Some(3) },
        Frame::Data { stream: 3, data: Bytes::new(), end_stream: false, padding: None },
        Frame::Headers {
            stream: 5,
            priority: Some(Priority { dependency: 3, exclusive: true, weight: 200 }),
            block: Bytes::from_static(b"hpack"),
            end_stream: false,
            end_headers: true,
            padding: Some(2),
        },
        Frame::Priority { stream: 7, priority: Priority { dependency: 0, exclusive: false, weight: 15 } },
        Frame::RstStream { stream: 1, code: ErrorCode::CANCEL },
        Frame::Settings { ack: false, params: Bytes::from_static(&[0, 4, 0, 0, 1, 0]) },
        Frame::Settings { ack: true, params: Bytes::new() },
        Frame::PushPromise {
            stream: 1,
            promised: 2,
            block: Bytes::from_static(b"pp"),
            end_headers: true,
            padding: Some(1),
        },
        Frame::Ping { ack: true, payload: *b"12345678" },
        Frame::GoAway { last_stream: 9, code: ErrorCode(0xabc), debug: Bytes::from_static(b"bye") },
        Frame::WindowUpdate { stream: 0, increment: 1 << 30 },
        Frame::Continuation { stream: 5, block: Bytes::from_static(b"more"), end_headers: false },
        Frame::Unknown { kind: 0xfa, stream: 3, flags: 0x80 },
    ];
    for f in frames {
        let mut out = BytesMut::new();
        f.encode(&mut out);
        let (_, back) = frame::decode(&mut out, 16_384).unwrap().unwrap();
        assert_eq!(back, f);
        assert!(out.is_empty());
    }
}

#[test]
fn a_frame_is_read_only_when_whole_and_its_payload_is_not_copied() {
    let mut input = BytesMut::from(&data(1, b"hello", false)[..]);
    input.extend_from_slice(&[0, 0]);
    let start = input.as_ptr() as usize;
    let (_, f) = frame::decode(&mut input, 16_384).unwrap().unwrap();
    let Frame::Data { data, .. } = f else { panic!("{f:?}") };
    assert_eq!(data.as_ptr() as usize, start + 9, "the payload is the read buffer's memory");
    assert_eq!(frame::decode(&mut input, 16_384).unwrap(), None);
    assert_eq!(input.len(), 2);
}

fn frame_error(bytes: &[u8]) -> FrameError {
    frame::decode(&mut BytesMut::from(bytes), 16_384).unwrap_err()
}

fn conn(code: ErrorCode) -> impl Fn(FrameError) -> bool {
    move |e| matches!(e, FrameError::Connection(c) if c.code() == code)
}

#[test]
fn malformed_frames_get_the_rfcs_error() {
    let protocol = conn(ErrorCode::PROTOCOL_ERROR);
    let size = conn(ErrorCode::FRAME_SIZE_ERROR);
    // 6.1/3, 6.2/2: padding as long as the payload or longer.
    assert!(protocol(frame_error(&raw(kind::DATA, flag::PADDED, 1, &[4, 1, 2, 3]))));
    assert!(frame::decode(&mut BytesMut::from(&raw(kind::DATA, flag::PADDED, 1, &[3, 1, 2, 3])[..]), 16_384).is_ok());
    assert!(protocol(frame_error(&raw(kind::HEADERS, flag::PADDED | flag::PRIORITY, 1, &[1, 0, 0, 0, 0, 16]))));
    assert!(size(frame_error(&raw(kind::DATA, flag::PADDED, 1, &[]))));
    assert!(size(frame_error(&raw(kind::HEADERS, flag::PRIORITY, 1, &[0, 0]))));
    // Stream 0 rules (6.1/1, 6.2/1, 6.3/1, 6.4/1, 6.10/3) and stream rules (6.5/2, 6.7/3, 6.8/1).
    for k in [kind::DATA, kind::HEADERS, kind::CONTINUATION, kind::PUSH_PROMISE] {
        assert!(protocol(frame_error(&raw(k, 0, 0, &[0; 4]))), "type {k}");
    }
    assert!(size(frame_error(&raw(kind::PRIORITY, 0, 0, &[0, 0, 0, 1]))));
    assert!(protocol(frame_error(&raw(kind::RST_STREAM, 0, 0, &[0; 4]))));
    assert!(protocol(frame_error(&raw(kind::SETTINGS, 0, 1, &[]))));
    assert!(protocol(frame_error(&raw(kind::PING, 0, 1, &[0; 8]))));
    assert!(protocol(frame_error(&raw(kind::GOAWAY, 0, 1, &[0; 8]))));
    // Fixed lengths (6.4/2, 6.5/1, 6.5/3, 6.7/4, 6.9/3).
    assert!(size(frame_error(&raw(kind::RST_STREAM, 0, 1, &[0; 3]))));
    assert!(size(frame_error(&raw(kind::SETTINGS, flag::ACK, 0, &[0; 6]))));
    assert!(size(frame_error(&raw(kind::SETTINGS, 0, 0, &[0; 5]))));
    assert!(size(frame_error(&raw(kind::PING, 0, 0, &[0; 7]))));
    assert!(size(frame_error(&raw(kind::WINDOW_UPDATE, 0, 0, &[0; 5]))));
    assert!(size(frame_error(&raw(kind::GOAWAY, 0, 0, &[0; 7]))));
    // 6.3/2: PRIORITY of another length is a stream error.
    assert_eq!(
        frame_error(&raw(kind::PRIORITY, 0, 3, &[0; 4])),
        FrameError::Stream { stream: 3, code: ErrorCode::FRAME_SIZE_ERROR }
    );
    // 4.2/2, 4.2/3: over SETTINGS_MAX_FRAME_SIZE, refused from the header alone.
    let big = raw(kind::DATA, 0, 1, &[0; 16_385]);
    assert!(size(frame::decode(&mut BytesMut::from(&big[..9]), 16_384).unwrap_err()));
    assert!(frame::decode(&mut BytesMut::from(&raw(kind::DATA, 0, 1, &[0; 16_384])[..]), 16_384).is_ok());
    // 4.1/3: the reserved bit is dropped.
    let mut r = raw(kind::RST_STREAM, 0, 1, &[0; 4]);
    r[5] |= 0x80;
    let (h, _) = frame::decode(&mut BytesMut::from(&r[..]), 16_384).unwrap().unwrap();
    assert_eq!(h.stream, 1);
}

// -- preface and SETTINGS --

fn fresh() -> Client {
    Client { c: ServerConnection::new(&ServerConfig::new(Http2Options::default(), 1024)), events: Vec::new() }
}

#[test]
fn the_server_speaks_first_and_the_preface_may_come_in_pieces() {
    let mut client = fresh();
    let frames = client.written();
    // Envoy's: HEADER_TABLE_SIZE, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, ENABLE_CONNECT_PROTOCOL.
    let mut params = PeerSettings::default();
    let Frame::Settings { ack: false, params: entries } = &frames[0] else { panic!("{frames:?}") };
    params.apply(entries).unwrap();
    assert_eq!(entries.len(), 4 * 6);
    assert_eq!((params.max_concurrent_streams, params.initial_window_size), (Some(1024), 16 << 20));
    assert_eq!(frames[1], Frame::WindowUpdate { stream: 0, increment: (24 << 20) - 65_535 });
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[]));
    hello.extend(ping(b"12345678"));
    let mut input = BytesMut::new();
    for piece in hello.chunks(5) {
        input.extend_from_slice(piece);
        client.c.recv(&mut input, &mut client.events).unwrap();
    }
    assert!(input.is_empty());
    assert_eq!(client.take_events(), [Event::Settings(PeerSettings::default())]);
    assert_eq!(
        client.written(),
        [Frame::Settings { ack: true, params: Bytes::new() }, Frame::Ping { ack: true, payload: *b"12345678" },]
    );
}

#[test]
fn a_bad_preface_or_a_first_frame_other_than_settings_is_protocol_error() {
    // 3.4/2
    let mut c = fresh();
    c.written();
    c.assert_silent_conn_error(b"INVALID CONNECTION PREFACE\r\n\r\n", ErrorCode::PROTOCOL_ERROR);
    // 3.4/3
    let mut c = fresh();
    c.written();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(ping(b"12345678"));
    c.assert_conn_error(&bytes, ErrorCode::PROTOCOL_ERROR);
    assert_eq!(c.c.error(), Some(ConnectionError::Limit(Violation::NoSettingsFirst)));
    // Every later call fails the same.
    assert!(c.send(&settings(&[])).is_err());
    assert_eq!(c.c.ping(*b"12345678"), Err(SendError::ConnectionClosed));
}

#[test]
fn settings_are_applied_and_acknowledged_and_bad_values_get_the_rfcs_code() {
    let mut c = Client::new();
    // 6.5.2/5, 6.5.3/1: unknown ids ignored; a later value wins.
    c.send(&settings(&[(0x99, 7), (id::INITIAL_WINDOW_SIZE, 100), (id::INITIAL_WINDOW_SIZE, 1)])).unwrap();
    assert_eq!(c.written(), [Frame::Settings { ack: true, params: Bytes::new() }]);
    assert!(matches!(c.take_events()[..], [Event::Settings(PeerSettings { initial_window_size: 1, .. })]));
    c.send(&raw(kind::SETTINGS, flag::ACK, 0, &[])).unwrap();
    assert_eq!(c.take_events(), [Event::SettingsAcked]);
    // 6.5.2/1..4: Envoy 1.40 closes with no GOAWAY.
    Client::new().assert_silent_conn_error(&settings(&[(id::ENABLE_PUSH, 2)]), ErrorCode::PROTOCOL_ERROR);
    Client::new()
        .assert_silent_conn_error(&settings(&[(id::INITIAL_WINDOW_SIZE, 1 << 31)]), ErrorCode::FLOW_CONTROL_ERROR);
    Client::new().assert_silent_conn_error(&settings(&[(id::MAX_FRAME_SIZE, 16_383)]), ErrorCode::PROTOCOL_ERROR);
    Client::new().assert_silent_conn_error(&settings(&[(id::MAX_FRAME_SIZE, 1 << 24)]), ErrorCode::PROTOCOL_ERROR);
    // 6.5/1: an ACK with a payload.
    Client::new().assert_conn_error(&raw(kind::SETTINGS, flag::ACK, 0, &[0; 6]), ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn ping_is_answered_and_a_ping_ack_is_reported() {
    let mut c = Client::new();
    c.send(&raw(kind::PING, 0x16 & !flag::ACK, 0, b"opaque!!")).unwrap();
    assert_eq!(c.written(), [Frame::Ping { ack: true, payload: *b"opaque!!" }]);
    c.c.ping(*b"keepaliv").unwrap();
    assert_eq!(c.written(), [Frame::Ping { ack: false, payload: *b"keepaliv" }]);
    c.send(&raw(kind::PING, flag::ACK, 0, b"keepaliv")).unwrap();
    assert_eq!(c.take_events(), [Event::PingAck { payload: *b"keepaliv" }]);
    assert!(c.written().is_empty(), "6.7/2: a PING ACK is not answered");
}

// -- stream states (RFC 9113 §5.1) --

#[test]
fn frames_on_idle_streams_are_connection_errors() {
    // 5.1/1..4
    Client::new().assert_conn_error(&data(1, b"x", true), ErrorCode::PROTOCOL_ERROR);
    Client::new().assert_silent_conn_error(&rst(1, ErrorCode::CANCEL), ErrorCode::PROTOCOL_ERROR);
    Client::new().assert_silent_conn_error(&window_update(1, 100), ErrorCode::PROTOCOL_ERROR);
    Client::new().assert_conn_error(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, b"b"), ErrorCode::PROTOCOL_ERROR);
    // 6.3/3: PRIORITY on an idle stream is fine.
    let mut c = Client::new();
    c.send(&raw(kind::PRIORITY, 0, 9, &[0, 0, 0, 0, 16])).unwrap();
    assert!(c.written().is_empty());
}

#[test]
fn data_and_headers_on_a_half_closed_remote_stream_are_stream_closed() {
    // 5.1/5, 6.1/2: a connection error, as Envoy 1.40 makes it (GOAWAY).
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    assert_eq!(c.take_events(), [Event::Headers { stream: 1, block: Bytes::from_static(b"block"), end_stream: true }]);
    c.assert_conn_error(&data(1, b"x", true), ErrorCode::STREAM_CLOSED);
    // 5.1/6: Envoy 1.40 closes the connection with no GOAWAY.
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.take_events();
    c.assert_silent_conn_error(&headers(1, true), ErrorCode::STREAM_CLOSED);
}

#[test]
fn frames_after_the_clients_rst_stream_are_ignored_and_continuation_is_protocol_error() {
    // 5.1/8: ignored, as Envoy 1.40 does (the RFC allows STREAM_CLOSED too).
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.send(&rst(1, ErrorCode::CANCEL)).unwrap();
    assert_eq!(c.take_events()[1], Event::Reset { stream: 1, code: ErrorCode::CANCEL, by_peer: true });
    c.written();
    c.assert_ignored(&data(1, b"x", false));
    assert!(c.take_events().is_empty());
    // 5.1/9: its block still goes to the HPACK decoder.
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.send(&rst(1, ErrorCode::CANCEL)).unwrap();
    c.take_events();
    c.written();
    c.assert_ignored(&headers(1, true));
    assert_eq!(c.take_events(), [Event::DiscardHeaderBlock { block: Bytes::from_static(b"block") }]);
    // 5.1/11
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.send(&rst(1, ErrorCode::CANCEL)).unwrap();
    c.assert_conn_error(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, b"b"), ErrorCode::PROTOCOL_ERROR);
    // 6.4/3: the connection stays usable.
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.send(&rst(1, ErrorCode::CANCEL)).unwrap();
    c.send(&headers(3, true)).unwrap();
    assert_eq!(c.c.stream_ids().collect::<Vec<_>>(), [3]);
}

#[test]
fn frames_on_a_stream_the_server_reset_are_ignored_with_their_window_given_back() {
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.c.reset_stream(1, ErrorCode::CANCEL).unwrap();
    assert_eq!(c.written(), [Frame::RstStream { stream: 1, code: ErrorCode::CANCEL }]);
    c.send(&data(1, &[0; 100], false)).unwrap();
    c.send(&headers(1, true)).unwrap();
    c.send(&window_update(1, 5)).unwrap();
    assert!(c.written().is_empty());
    assert_eq!(
        c.take_events(),
        [
            Event::Headers { stream: 1, block: Bytes::from_static(b"block"), end_stream: false },
            Event::DiscardHeaderBlock { block: Bytes::from_static(b"block") },
        ]
    );
    assert_eq!(c.c.connection_recv_window(), (24 << 20) - 100, "released, not yet announced (half a window)");
}

#[test]
fn a_finished_stream_is_closed_and_late_frames_on_it_are_ignored() {
    // 5.1/10, 5.1/12, 5.1/13
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.c.send_headers(1, Bytes::from_static(b"resp"), false).unwrap();
    c.c.send_data(1, &mut Bytes::from_static(b"ok"), true).unwrap();
    assert_eq!(c.c.active_streams(), 0);
    assert_eq!(c.c.send_data(1, &mut Bytes::from_static(b"x"), true), Err(SendError::StreamNotWritable));
    c.written();
    c.assert_ignored(&data(1, b"x", false));
    c.assert_ignored(&headers(1, true));
    c.assert_conn_error(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, b"b"), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn stream_ids_must_be_odd_and_increasing() {
    // 5.1.1/1
    Client::new().assert_silent_conn_error(&headers(2, true), ErrorCode::PROTOCOL_ERROR);
    // 5.1.1/2
    let mut c = Client::new();
    c.send(&headers(5, true)).unwrap();
    c.assert_conn_error(&headers(3, true), ErrorCode::PROTOCOL_ERROR);
    assert!(matches!(c.c.error(), Some(ConnectionError::Protocol { .. })));
}

#[test]
fn streams_past_max_concurrent_streams_are_refused() {
    // 5.1.2/1
    let mut c = Client::with(Http2Options { max_concurrent_streams: 2, ..Default::default() }, &[]);
    c.send(&[headers(1, true), headers(3, true)].concat()).unwrap();
    c.assert_stream_error(&headers(5, true), 5, ErrorCode::REFUSED_STREAM);
    let events = c.take_events();
    assert_eq!(events.len(), 4);
    assert_eq!(events[2], Event::DiscardHeaderBlock { block: Bytes::from_static(b"block") });
    assert_eq!(events[3], Event::Reset { stream: 5, code: ErrorCode::REFUSED_STREAM, by_peer: false });
    // Its late DATA is ignored (the server reset it).
    c.send(&data(5, b"x", true)).unwrap();
    assert!(c.written().is_empty());
    // A finished stream makes room.
    c.c.send_headers(1, Bytes::from_static(b"r"), true).unwrap();
    c.send(&headers(7, true)).unwrap();
    assert!(matches!(c.take_events()[..], [Event::Headers { stream: 7, .. }]));
}

#[test]
fn priority_rules() {
    // 5.3.1/1: a new stream's HEADERS depending on itself: reported, nothing
    // sent, no stream opened (the caller closes the connection, as Envoy does).
    let mut c = Client::new();
    let mut p = vec![0, 0, 0, 1, 15];
    p.extend_from_slice(b"block");
    c.send(&raw(kind::HEADERS, flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM, 1, &p)).unwrap();
    assert!(!c.written().iter().any(|f| matches!(f, Frame::RstStream { .. } | Frame::GoAway { .. })));
    assert_eq!(
        c.take_events(),
        [Event::DiscardHeaderBlock { block: Bytes::from_static(b"block") }, Event::SelfDependentStream { stream: 1 }]
    );
    // 5.3.1/2: a PRIORITY making its stream depend on itself is ignored, idle,
    // open or closed, as Envoy 1.40 (nghttp2) ignores it.
    let mut c = Client::new();
    c.send(&raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 1, 15])).unwrap();
    c.send(&headers(1, false)).unwrap();
    c.send(&raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 1, 15])).unwrap();
    c.send(&raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 3, 15])).unwrap();
    assert!(c.written().iter().all(|f| !matches!(f, Frame::RstStream { .. } | Frame::GoAway { .. })));
    assert!(matches!(c.take_events()[..], [Event::Headers { stream: 1, .. }]));
    // 6.3/1: on stream 0 too, as Envoy 1.40 ignores it.
    Client::new().assert_ignored(&raw(kind::PRIORITY, 0, 0, &[0, 0, 0, 1, 15]));
    // 6.3/2 on an open stream, 6.3/4
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.send(&raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 0, 15])).unwrap();
    c.assert_stream_error(&raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 0]), 1, ErrorCode::FRAME_SIZE_ERROR);
}

#[test]
fn a_push_promise_from_a_client_is_protocol_error() {
    // 8.4/1
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.assert_silent_conn_error(
        &raw(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0, 0, 0, 2, b'x']),
        ErrorCode::PROTOCOL_ERROR,
    );
}

#[test]
fn trailers_end_the_request_and_a_second_headers_without_end_stream_is_malformed() {
    // 8/3
    let mut c = Client::new();
    c.send(&[headers(1, false), data(1, b"body", false), headers(1, true)].concat()).unwrap();
    assert_eq!(
        c.take_events()[1..],
        [
            Event::Data { stream: 1, data: Bytes::from_static(b"body"), end_stream: false },
            Event::Trailers { stream: 1, block: Bytes::from_static(b"block") },
        ]
    );
    // 8.1/1
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.assert_stream_error(&headers(1, false), 1, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn unknown_frames_are_ignored_outside_a_header_block() {
    // 4.1/1, 5.5/1, 5.5/2
    let mut c = Client::new();
    c.send(&raw(0xfa, 0xff, 0, b"whatever")).unwrap();
    assert!(c.written().is_empty() && c.take_events().is_empty());
    c.send(&raw(kind::HEADERS, 0, 1, b"bl")).unwrap();
    c.assert_conn_error(&raw(0xfa, 0, 1, b""), ErrorCode::PROTOCOL_ERROR);
}

// -- header blocks --

#[test]
fn continuation_frames_make_one_header_block() {
    // 6.10/1
    let mut c = Client::new();
    let bytes = [
        raw(kind::HEADERS, flag::END_STREAM, 1, b"a"),
        raw(kind::CONTINUATION, 0, 1, b"b"),
        raw(kind::CONTINUATION, flag::END_HEADERS, 1, b"c"),
    ]
    .concat();
    c.send(&bytes).unwrap();
    assert_eq!(c.take_events(), [Event::Headers { stream: 1, block: Bytes::from_static(b"abc"), end_stream: true }]);
}

#[test]
fn a_header_block_must_not_be_interrupted_or_continued_elsewhere() {
    let open = raw(kind::HEADERS, 0, 1, b"a");
    // 6.10/2, 6.2/3, 4.3/2
    for other in [
        ping(b"12345678"),
        data(3, b"x", false),
        raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 0, 1]),
        raw(kind::PRIORITY, 0, 1, &[0; 4]),
    ] {
        let mut c = Client::new();
        c.send(&open).unwrap();
        c.assert_conn_error(&other, ErrorCode::PROTOCOL_ERROR);
    }
    // 6.10/6
    let mut c = Client::new();
    c.send(&open).unwrap();
    c.assert_conn_error(&raw(kind::CONTINUATION, flag::END_HEADERS, 3, b"b"), ErrorCode::PROTOCOL_ERROR);
    // 6.10/4, 6.10/5
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.assert_conn_error(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, b"b"), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn a_header_block_is_bounded_in_size_and_in_continuation_frames() {
    // CVE-2024-27919
    let mut c = Client::new();
    c.send(&raw(kind::HEADERS, 0, 1, &[0; 10_000])).unwrap();
    c.assert_conn_error(&raw(kind::CONTINUATION, 0, 1, &[0; 10_000]), ErrorCode::ENHANCE_YOUR_CALM);
    assert_eq!(c.c.error(), Some(ConnectionError::Limit(Violation::HeaderBlockTooLarge)));
    let mut c = Client::new();
    c.send(&raw(kind::HEADERS, 0, 1, b"a")).unwrap();
    for _ in 0..MAX_CONTINUATION_FRAMES {
        c.send(&raw(kind::CONTINUATION, 0, 1, b"b")).unwrap();
    }
    c.assert_conn_error(&raw(kind::CONTINUATION, 0, 1, b"b"), ErrorCode::ENHANCE_YOUR_CALM);
    assert_eq!(c.c.error(), Some(ConnectionError::Limit(Violation::ContinuationFrames)));
}

#[test]
fn response_headers_larger_than_a_frame_go_in_continuations() {
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.c.send_headers(1, Bytes::from(vec![7; 40_000]), true).unwrap();
    let frames = c.written();
    assert!(
        matches!(&frames[0], Frame::Headers { block, end_headers: false, end_stream: true, .. } if block.len() == 16_384)
    );
    assert!(
        matches!(&frames[2], Frame::Continuation { block, end_headers: true, .. } if block.len() == 40_000 - 2 * 16_384)
    );
    assert_eq!(frames.len(), 3);
}

// -- flow control --

#[test]
fn sending_is_bounded_by_the_stream_and_connection_windows() {
    // 6.9.1/5: SETTINGS_INITIAL_WINDOW_SIZE 1000.
    let mut c = Client::with(Http2Options::default(), &[(id::INITIAL_WINDOW_SIZE, 1000)]);
    c.send(&headers(1, true)).unwrap();
    c.c.send_headers(1, Bytes::from_static(b"r"), false).unwrap();
    let mut body = Bytes::from(vec![1; 3000]);
    assert_eq!(c.c.send_data(1, &mut body, true), Ok(1000));
    assert_eq!(body.len(), 2000);
    assert_eq!(c.c.send_data(1, &mut body, true), Ok(0));
    c.take_events();
    assert!(c.written().iter().all(|f| !matches!(f, Frame::Data { end_stream: true, .. })));
    c.send(&window_update(1, 500)).unwrap();
    assert_eq!(c.take_events(), [Event::SendWindowOpened { stream: 1 }]);
    assert_eq!(c.c.send_window(1), 500);
    // 6.9.2/1: a new initial window size moves open streams' windows (below zero too).
    c.send(&settings(&[(id::INITIAL_WINDOW_SIZE, 200)])).unwrap();
    assert_eq!(c.c.send_window(1), 0);
    c.send(&settings(&[(id::INITIAL_WINDOW_SIZE, 2000)])).unwrap();
    assert_eq!(c.c.send_window(1), 1500);
    // 6.9.1/4: the connection window (65535) bounds every stream together.
    let mut c = Client::with(Http2Options::default(), &[(id::INITIAL_WINDOW_SIZE, 1 << 20)]);
    c.send(&[headers(1, true), headers(3, true)].concat()).unwrap();
    assert_eq!(c.c.send_data(1, &mut Bytes::from(vec![0; 60_000]), false), Ok(60_000));
    assert_eq!(c.c.send_data(3, &mut Bytes::from(vec![0; 60_000]), false), Ok(5_535));
    c.take_events();
    c.send(&window_update(0, 10)).unwrap();
    assert_eq!(c.take_events(), [Event::SendWindowOpened { stream: 3 }]);
    // 4.2/4: DATA in frames of at most the client's SETTINGS_MAX_FRAME_SIZE.
    let frames = c.written();
    assert!(frames.iter().all(|f| !matches!(f, Frame::Data { data, .. } if data.len() > 16_384)));
}

#[test]
fn window_overflow_is_flow_control_error() {
    // 6.9.1/2
    Client::new().assert_silent_conn_error(&window_update(0, (1 << 31) - 1), ErrorCode::FLOW_CONTROL_ERROR);
    // 6.9.1/3
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.assert_silent_conn_error(&window_update(1, (1 << 31) - 1), ErrorCode::FLOW_CONTROL_ERROR);
    // 6.9.2/2
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.send(&window_update(1, (1 << 31) - 1 - 65_535)).unwrap();
    c.assert_conn_error(&settings(&[(id::INITIAL_WINDOW_SIZE, 65_536)]), ErrorCode::FLOW_CONTROL_ERROR);
    // 6.9/1, 6.9/2: on a stream too, Envoy 1.40 closes the connection, with
    // no GOAWAY either way.
    Client::new().assert_silent_conn_error(&window_update(0, 0), ErrorCode::PROTOCOL_ERROR);
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.assert_silent_conn_error(&window_update(1, 0), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn receive_windows_come_back_as_data_is_consumed_not_before() {
    let options = Http2Options {
        initial_stream_window_size: 100_000,
        initial_connection_window_size: 150_000,
        ..Default::default()
    };
    let mut c = Client::with(options, &[]);
    c.send(&headers(1, false)).unwrap();
    c.send(&data(1, &[0; 16_000], false)).unwrap();
    c.send(&data(1, &[0; 16_000], false)).unwrap();
    c.send(&data(1, &[0; 16_000], false)).unwrap();
    assert!(c.written().is_empty(), "nothing consumed, no WINDOW_UPDATE");
    c.c.release(1, 48_000).unwrap();
    assert!(c.written().is_empty(), "less than half of either window");
    c.c.release(1, 2_000).unwrap();
    assert_eq!(c.written(), [Frame::WindowUpdate { stream: 1, increment: 50_000 }]);
    // A padded frame's padding comes back without the caller.
    let mut padded = vec![99];
    padded.extend_from_slice(&[0; 100]);
    c.send(&raw(kind::DATA, flag::PADDED, 1, &padded)).unwrap();
    c.c.release(1, 27_000).unwrap();
    assert_eq!(c.written(), [Frame::WindowUpdate { stream: 0, increment: 77_100 }]);
}

#[test]
fn data_beyond_a_window_is_flow_control_error() {
    let options = Http2Options {
        initial_stream_window_size: 65_535,
        initial_connection_window_size: 100_000,
        ..Default::default()
    };
    let mut c = Client::with(options.clone(), &[]);
    c.send(&headers(1, false)).unwrap();
    for _ in 0..3 {
        c.send(&data(1, &[0; 16_384], false)).unwrap();
    }
    c.send(&data(1, &[0; 16_383], false)).unwrap();
    c.assert_stream_error(&data(1, b"x", false), 1, ErrorCode::FLOW_CONTROL_ERROR);
    let mut c = Client::with(options, &[]);
    c.send(&[headers(1, false), headers(3, false)].concat()).unwrap();
    for s in [1, 1, 1, 3, 3, 3] {
        c.send(&data(s, &[0; 16_384], false)).unwrap();
    }
    c.assert_conn_error(&data(3, &[0; 2_000], false), ErrorCode::FLOW_CONTROL_ERROR);
}

// -- GOAWAY --

#[test]
fn streams_above_the_goaway_last_stream_id_are_not_processed() {
    let mut c = Client::new();
    c.send(&headers(1, false)).unwrap();
    c.c.go_away(1, ErrorCode::NO_ERROR, Bytes::new()).unwrap();
    assert!(matches!(c.written()[..], [Frame::GoAway { last_stream: 1, .. }]));
    c.send(&[headers(3, true), data(1, b"x", true)].concat()).unwrap();
    assert_eq!(
        c.take_events()[1..],
        [
            Event::DiscardHeaderBlock { block: Bytes::from_static(b"block") },
            Event::Data { stream: 1, data: Bytes::from_static(b"x"), end_stream: true },
        ]
    );
    assert_eq!(c.c.stream_ids().collect::<Vec<_>>(), [1]);
    // The client's frames on the stream it opened too late are ignored.
    c.send(&[data(3, b"x", false), headers(3, true)].concat()).unwrap();
    assert!(c.written().is_empty());
    assert_eq!(c.take_events(), [Event::DiscardHeaderBlock { block: Bytes::from_static(b"block") }]);
    c.send(&raw(kind::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0x12, 0x34])).unwrap();
    assert_eq!(c.take_events(), [Event::GoAway { last_stream: 0, code: ErrorCode(0x1234), debug: Bytes::new() }]);
}

// -- Envoy's limits --

#[test]
fn pings_and_settings_from_a_client_that_does_not_read_are_an_outbound_control_flood() {
    let options = Http2Options { max_outbound_control_frames: 10, ..Default::default() };
    let mut c = Client::with(options.clone(), &[]);
    for _ in 0..10 {
        c.send(&ping(b"12345678")).unwrap();
    }
    assert_eq!(c.c.outbound_control_frames(), 10);
    let e = c.send(&settings(&[])).unwrap_err();
    assert_eq!(e, ConnectionError::Limit(Violation::OutboundControlFrames));
    assert!(!c.written().iter().any(|f| matches!(f, Frame::GoAway { .. })), "no GOAWAY behind an unread queue");
    // A client that reads is not a flood.
    let mut c = Client::with(options, &[]);
    for _ in 0..100 {
        c.send(&ping(b"12345678")).unwrap();
        c.written();
    }
    assert_eq!(c.c.outbound_control_frames(), 0);
}

#[test]
fn frames_the_client_does_not_read_are_an_outbound_flood() {
    let options = Http2Options { max_outbound_frames: 20, ..Default::default() };
    let mut c = Client::with(options, &[(id::MAX_FRAME_SIZE, 16_384)]);
    c.send(&headers(1, true)).unwrap();
    c.c.send_headers(1, Bytes::from_static(b"r"), false).unwrap();
    // 19 DATA frames of 1 byte each fill the queue to 20...
    for _ in 0..19 {
        c.c.send_data(1, &mut Bytes::from_static(b"x"), false).unwrap();
    }
    assert_eq!(c.c.outbound_frames(), 20);
    // ...and half of what is written frees as many.
    let half = c.c.pending_output_len() / 2;
    assert_eq!(c.c.pending_output().len(), 2 * half, "small frames in one buffer");
    c.c.advance_output(half);
    assert_eq!(c.c.outbound_frames(), 10);
    for _ in 0..10 {
        c.c.send_data(1, &mut Bytes::from_static(b"x"), false).unwrap();
    }
    assert_eq!(c.c.send_data(1, &mut Bytes::from_static(b"x"), false), Err(SendError::ConnectionClosed));
    assert_eq!(c.c.error(), Some(ConnectionError::Limit(Violation::OutboundFrames)));
}

#[test]
fn inbound_floods_are_enhance_your_calm() {
    // max_consecutive_inbound_frames_with_empty_payload: 1
    let mut c = Client::new();
    c.send(&[headers(1, false), data(1, b"", false)].concat()).unwrap();
    c.assert_conn_error(&data(1, b"", false), ErrorCode::ENHANCE_YOUR_CALM);
    assert_eq!(c.c.error(), Some(ConnectionError::Limit(Violation::EmptyFrames)));
    // max_inbound_priority_frames_per_stream: 100 (times one more than the streams opened).
    let mut c = Client::new();
    for _ in 0..100 {
        c.send(&raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 0, 1])).unwrap();
    }
    c.assert_conn_error(&raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 0, 1]), ErrorCode::ENHANCE_YOUR_CALM);
    // max_inbound_window_update_frames_per_data_frame_sent: 10 (5 + 2 per stream + 2 × 10 per DATA sent).
    let mut c = Client::new();
    for _ in 0..5 {
        c.send(&window_update(0, 1)).unwrap();
    }
    c.assert_conn_error(&window_update(0, 1), ErrorCode::ENHANCE_YOUR_CALM);
    let mut c = Client::new();
    c.send(&headers(1, true)).unwrap();
    c.c.send_data(1, &mut Bytes::from_static(b"x"), false).unwrap();
    for _ in 0..27 {
        c.send(&window_update(0, 1)).unwrap();
    }
    c.assert_conn_error(&window_update(0, 1), ErrorCode::ENHANCE_YOUR_CALM);
}

// -- memory --

#[test]
fn an_idle_connection_holds_little() {
    // No buffer is allocated while nothing is in flight; the struct itself is
    // all an idle connection holds (h2's is ~24 KiB with its buffers).
    let size = std::mem::size_of::<ServerConnection>();
    assert!(size <= 384, "{size} (312 when written)");
    assert_eq!(std::mem::size_of::<stream_table::Stream>(), 24);
    let mut c = Client::new();
    for id in (1..40).step_by(2) {
        c.send(&headers(id, true)).unwrap();
    }
    for id in (1..40).step_by(2) {
        c.c.send_headers(id, Bytes::from(vec![0; 2000]), true).unwrap();
    }
    c.written();
    assert_eq!(c.c.active_streams(), 0);
    assert_eq!(c.c.pending_output_len(), 0);
}

#[test]
fn frames_the_rfc_allows_are_accepted() {
    let mut c = Client::new();
    // 6.2/4: HEADERS with padding and priority.
    let mut p = vec![3, 0, 0, 0, 0, 16];
    p.extend_from_slice(b"block\0\0\0");
    c.send(&raw(kind::HEADERS, flag::PADDED | flag::PRIORITY | flag::END_HEADERS, 1, &p)).unwrap();
    // 4.2/1: DATA of exactly SETTINGS_MAX_FRAME_SIZE; 6.9/4: WINDOW_UPDATE on the connection and an open stream.
    c.send(&[data(1, &[0; 16_384], false), window_update(0, 1), window_update(1, 1)].concat()).unwrap();
    // 8/4: concurrent streams; 7/1: an unknown error code in RST_STREAM.
    c.send(&[headers(3, true), headers(5, true), rst(1, ErrorCode(0xff))].concat()).unwrap();
    // 7/2: an unknown error code in GOAWAY.
    c.send(&raw(kind::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0xff])).unwrap();
    assert!(c.written().is_empty());
    let events = c.take_events();
    assert_eq!(events[0], Event::Headers { stream: 1, block: Bytes::from_static(b"block"), end_stream: false });
    assert!(events.contains(&Event::Reset { stream: 1, code: ErrorCode(0xff), by_peer: true }));
    assert_eq!(c.c.stream_ids().collect::<Vec<_>>(), [3, 5]);
    assert_eq!(c.c.last_peer_stream(), 5);
}
