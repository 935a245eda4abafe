//! Courier's own HTTP/2 codec, to replace the `h2` crate on the server side.
//!
//! Why: `h2` answers many protocol errors with GOAWAY PROTOCOL_ERROR where
//! RFC 9113 names STREAM_CLOSED or FLOW_CONTROL_ERROR (the `courier` lines of
//! tests/h2conformance/expected_failures.txt), cannot count its outbound queue
//! (Envoy's `max_outbound_frames` and `max_outbound_control_frames`: a client
//! flooding SETTINGS or PINGs without reading is held back by the socket instead
//! of being found out), and holds more memory per idle connection than Courier's
//! bench targets allow. Here the framing and the connection's state are
//! Courier's, sans-IO: bytes in, events out, commands in, bytes out, with no
//! socket, task or clock, so every rule is tested by feeding raw frames.
//!
//! Header blocks are opaque `Bytes`: HPACK is `http2::hpack`'s, applied by the
//! caller in the order blocks are reported. The downstream connection loop
//! (`http_connection_manager::http2_connection`, with `http2::server_stream`
//! for its streams' tasks) drives it; the upstream side still runs on `h2`.
//!
//! Driving it (what the connection loop does): append socket reads to a
//! `BytesMut` and call `ServerConnection::recv` with it and an event vector,
//! whatever the output's state (a client flooding SETTINGS or PINGs without
//! reading must reach the outbound limits, not be held back); decode each
//! header block reported, `DiscardHeaderBlock` ones included, in order; call
//! `release` for every `Data` byte once consumed or dropped (reset streams
//! included); write `pending_output` and `advance_output` until it is empty;
//! on `Err`, flush the GOAWAY (not after an outbound flood: Envoy closes
//! without flushing) and close. The premature-reset rule is the loop's, with
//! `flood_limits::PrematureResets`: a stream's start is its `Headers` event,
//! its end an `Event::Reset`, a `reset_stream` or the END_STREAM both ways.
//!
//! - `frame` — frames read from and written to bytes, with the RFC's error for
//!   each malformed one
//! - `error_code` — RFC 9113 §7's codes; stream and connection errors
//! - `settings` — the peer's SETTINGS applied and checked; the server's own
//! - `flow_window` — send and receive windows, WINDOW_UPDATE as data is consumed
//! - `stream_table` — the client's streams, compact, and how recent ones closed
//! - `outbound_queue` — the output buffer, counted in frames for Envoy's limits
//! - `event` — what the connection reports, and its commands' errors
//! - `server_connection` — the state machine

pub mod error_code;
pub mod event;
pub mod flow_window;
pub mod frame;
pub mod outbound_queue;
pub mod server_connection;
pub mod settings;
pub mod stream_table;

#[cfg(test)]
mod tests;

pub use error_code::{ConnectionError, ErrorCode, FrameError};
pub use event::{Event, SendError};
pub use frame::{Frame, FrameHeader};
pub use server_connection::{ServerConfig, ServerConnection, PREFACE};
pub use settings::PeerSettings;

/// Fuzz target (`crate::fuzz`): a client's bytes (after the preface) through a
/// server connection at once and in reads cut where the input says: the same
/// events, the same error and the same output either way (a frame split across
/// reads must mean what it means whole); and what the server writes reads back
/// as well-formed frames. Nothing is consumed or written until the end, so that
/// both runs see the same windows and the same outbound queue.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    let options = crate::http::http2::Http2Options {
        max_concurrent_streams: 4,
        max_outbound_control_frames: 20,
        ..Default::default()
    };
    let config = ServerConfig::new(options, 4096);
    let run = |cuts: &mut dyn Iterator<Item = usize>| {
        let mut c = ServerConnection::new(&config);
        let mut events = Vec::new();
        let mut input = bytes::BytesMut::from(&PREFACE[..]);
        let mut result = Ok(());
        let mut at = 0;
        for cut in cuts.chain(std::iter::once(data.len())) {
            let cut = cut.clamp(at, data.len());
            input.extend_from_slice(&data[at..cut]);
            at = cut;
            result = c.recv(&mut input, &mut events);
            if result.is_err() {
                break;
            }
        }
        for e in &events {
            if let Event::Data { stream, data, .. } = e {
                let _ = c.release(*stream, data.len());
            }
        }
        let mut output = Vec::new();
        while !c.pending_output().is_empty() {
            output.extend_from_slice(c.pending_output());
            c.advance_output(c.pending_output().len());
        }
        assert_eq!(c.outbound_frames(), 0);
        (events, result, output)
    };
    let whole = run(&mut std::iter::empty());
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let cut = run(&mut (step..data.len()).step_by(step));
    assert_eq!(cut, whole, "read {step} bytes at a time");
    let mut output = bytes::BytesMut::from(&whole.2[..]);
    while !output.is_empty() {
        match frame::decode(&mut output, frame::MAX_MAX_FRAME_SIZE) {
            Ok(Some(_)) => {}
            other => panic!("the server wrote a frame that does not read back: {other:?}"),
        }
    }
}
