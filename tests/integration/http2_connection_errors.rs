//! HTTP/2 connection errors a client's frames cause, each on a connection of
//! its own: whether a GOAWAY reaches the client, with which code, and the
//! stats, as Envoy 1.40 answers the same bytes (checked by running it, frame by
//! frame). Envoy sends a GOAWAY for what its codec library finds while reading
//! frames and closes silently for what it finds acting on one; either way it
//! counts `downstream_cx_protocol_error` only (`http2.goaway_sent` and
//! `http2.rx_messaging_error` stay 0). A PRIORITY frame on stream 0 is ignored.

use std::io::Write;

use crate::harness::Courier;
use crate::http2_downstream::raw::*;
use crate::http_util::*;

fn web() -> Courier {
    let routes = "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  routes:\n  - match: { prefix: \"/\" }\n    \
                  direct_response: { status: 200, body: { inline_string: hi } }\n";
    // No wait for the client's close after the GOAWAY: each case reads to the close.
    start_web("codec_type: HTTP2\ndelayed_close_timeout: 0s\n", routes, "", &[])
}

fn setting(id: u16, value: u32) -> Vec<u8> {
    frame(SETTINGS, 0, 0, &[&id.to_be_bytes()[..], &value.to_be_bytes()].concat())
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// HEADERS for `GET /` on `stream`.
fn get(stream: u32, flags: u8) -> Vec<u8> {
    frame(HEADERS, flags, stream, &request_block(false, "/", &[]))
}

/// What Envoy 1.40 sends before closing for each: the GOAWAY's code, or `None`
/// for a close with no GOAWAY.
fn cases() -> Vec<(&'static str, Vec<u8>, Option<u32>)> {
    let open = get(1, END_HEADERS);
    vec![
        ("DATA on stream 0", frame(DATA, 0, 0, b"x"), Some(PROTOCOL_ERROR)),
        ("CONTINUATION on stream 0", frame(CONTINUATION, END_HEADERS, 0, b""), Some(PROTOCOL_ERROR)),
        ("CONTINUATION on an unknown stream", frame(CONTINUATION, END_HEADERS, 1, b"\x82"), Some(PROTOCOL_ERROR)),
        (
            "a header block cut by a PING",
            [get(1, END_STREAM), frame(PING, 0, 0, &[0; 8])].concat(),
            Some(PROTOCOL_ERROR),
        ),
        ("DATA on an idle stream", frame(DATA, 0, 1, b"x"), Some(PROTOCOL_ERROR)),
        ("padding longer than DATA", [open.clone(), frame(DATA, PADDED, 1, b"\x05abc")].concat(), Some(PROTOCOL_ERROR)),
        ("a frame too large", frame(DATA, 0, 1, &[0; 16_385]), Some(FRAME_SIZE_ERROR)),
        ("SETTINGS ACK with a payload", frame(SETTINGS, 1, 0, &[0, 3, 0, 0, 0, 1]), Some(FRAME_SIZE_ERROR)),
        ("SETTINGS of 5 bytes", frame(SETTINGS, 0, 0, &[0; 5]), Some(FRAME_SIZE_ERROR)),
        ("PING of 7 bytes", frame(PING, 0, 0, &[0; 7]), Some(FRAME_SIZE_ERROR)),
        ("GOAWAY of 7 bytes", frame(GOAWAY, 0, 0, &[0; 7]), Some(FRAME_SIZE_ERROR)),
        ("WINDOW_UPDATE of 3 bytes", frame(WINDOW_UPDATE, 0, 0, &[0; 3]), Some(FRAME_SIZE_ERROR)),
        ("RST_STREAM of 3 bytes", frame(RST_STREAM, 0, 1, &[0; 3]), Some(FRAME_SIZE_ERROR)),
        ("PRIORITY of 4 bytes on an idle stream", frame(PRIORITY, 0, 1, &[0; 4]), Some(FRAME_SIZE_ERROR)),
        (
            "DATA after END_STREAM",
            [get(1, END_HEADERS | END_STREAM), frame(DATA, 0, 1, b"x")].concat(),
            Some(STREAM_CLOSED),
        ),
        (
            "a header block that does not decode",
            frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0xff; 4]),
            Some(COMPRESSION_ERROR),
        ),
        ("HEADERS on stream 0", get(0, END_HEADERS | END_STREAM), None),
        ("HEADERS on an even stream", get(2, END_HEADERS | END_STREAM), None),
        ("RST_STREAM on stream 0", frame(RST_STREAM, 0, 0, &[0, 0, 0, 8]), None),
        ("RST_STREAM on an idle stream", frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]), None),
        ("SETTINGS on a stream", frame(SETTINGS, 0, 1, b""), None),
        ("SETTINGS_ENABLE_PUSH 2", setting(2, 2), None),
        ("SETTINGS_INITIAL_WINDOW_SIZE 2^31", setting(4, 1 << 31), None),
        ("SETTINGS_MAX_FRAME_SIZE 16383", setting(5, 16_383), None),
        ("SETTINGS_MAX_FRAME_SIZE 2^24", setting(5, 1 << 24), None),
        ("PING on a stream", frame(PING, 0, 1, &[0; 8]), None),
        ("GOAWAY on a stream", frame(GOAWAY, 0, 1, &[0; 8]), None),
        ("PUSH_PROMISE", frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2, 0x82]), None),
        ("WINDOW_UPDATE of 0 on the connection", window_update(0, 0), None),
        ("WINDOW_UPDATE of 0 on an open stream", [open.clone(), window_update(1, 0)].concat(), None),
        (
            "HEADERS after END_STREAM",
            [get(1, END_HEADERS | END_STREAM), get(1, END_HEADERS | END_STREAM)].concat(),
            None,
        ),
        ("a stream window over 2^31-1", [open.clone(), window_update(1, (1 << 31) - 1)].concat(), None),
        ("WINDOW_UPDATE on an idle stream", window_update(1, 1), None),
        (
            "a connection window over 2^31-1",
            [window_update(0, (1 << 31) - 1), window_update(0, (1 << 31) - 1)].concat(),
            None,
        ),
    ]
}

#[test]
fn connection_errors_send_goaway_as_envoy_does_and_count_a_protocol_error_only() {
    let c = web();
    let cases = cases();
    for (name, bytes, goaway) in &cases {
        let mut s = connect(c.listener("web"), &[]);
        s.write_all(bytes).unwrap();
        assert_eq!(goaway_then_close(&mut s), *goaway, "{name}");
    }
    c.wait_stat("http.ingress.downstream_cx_protocol_error", |v| v == cases.len() as i64);
    assert_eq!(c.stat("http2.goaway_sent"), Some(0));
    assert_eq!(c.stat("http2.rx_messaging_error"), Some(0));
}

/// A bad preface ends the connection with no GOAWAY; a first frame other than
/// SETTINGS with GOAWAY PROTOCOL_ERROR (after the server's SETTINGS).
#[test]
fn a_bad_preface_closes_silently_and_a_first_frame_not_settings_gets_goaway() {
    let c = web();
    let mut s = std::net::TcpStream::connect(c.listener("web")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").unwrap();
    assert_eq!(goaway_then_close(&mut s), None);
    let mut s = std::net::TcpStream::connect(c.listener("web")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(&[&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &frame(PING, 0, 0, &[0; 8])].concat()).unwrap();
    assert_eq!(goaway_then_close(&mut s), Some(PROTOCOL_ERROR));
    c.wait_stat("http.ingress.downstream_cx_protocol_error", |v| v == 2);
    assert_eq!(c.stat("http2.goaway_sent"), Some(0));
    assert_eq!(c.stat("http2.rx_messaging_error"), Some(0));
}

/// RFC 9113 §6.3 makes a PRIORITY frame on stream 0 a connection error;
/// Envoy 1.40 ignores it (h2conformance case 6.3/1, listed for both servers).
#[test]
fn a_priority_frame_on_stream_0_is_ignored() {
    let c = web();
    let mut s = connect(c.listener("web"), &[]);
    s.write_all(&frame(PRIORITY, 0, 0, &[0, 0, 0, 1, 15])).unwrap();
    ping_round_trip(&mut s).expect("the connection stays");
    assert_eq!(c.stat("http.ingress.downstream_cx_protocol_error"), Some(0));
}
