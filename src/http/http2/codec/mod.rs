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
//! caller in the order blocks are reported. Not wired into the connection loop
//! yet (`http_connection_manager::http2_connection` still runs `h2` with
//! `FrameGuard`); that comes when the HPACK half exists too.
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
