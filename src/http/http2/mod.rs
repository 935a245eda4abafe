//! Courier's HTTP/2 codec (Envoy's `http/http2/codec_impl`), on the `h2` crate.
//!
//! `h2` does the framing, HPACK, stream states and flow control; what Envoy adds
//! on top (its settings defaults, the `http2.*` stats, the flood and abuse
//! limits `h2` lacks) is Courier's, here and in the connection manager's
//! `http2_connection` loop.
//!
//! - `options` — `Http2ProtocolOptions` with Envoy's defaults, for both sides
//! - `stats` — Envoy's `http2.*` codec stats
//! - `io` — the transport as the codec sees it (replayed preface, byte counts)
//! - `frame_guard` — Envoy's flood limits, the premature-reset rule, RFC 9113's
//!   frame-length rules and the pending-send bound, read off the frame headers
//! - `flood_limits` — those limits' counters and formulas, for any codec
//! - `violation` — why a connection must end, for either codec
//! - `codec` — Courier's own HTTP/2 framing and server connection state
//!   machine, sans-IO, to replace `h2` (not wired into the connection loop yet)
//! - `request_body` — a request body as the router reads it, window given back as read
//! - `response_writer` — a response onto a stream, as the peer's window allows
//! - `server_stream` — a downstream stream as its task sees it, over `codec`
//! - `hpack` — Courier's own HPACK (RFC 7541), not wired in yet (see its why-paragraph)
//! - `request_head` — a decoded request header list checked (RFC 9113 §8.2, §8.3)
//!   and made the request's head; not wired in yet either

pub mod codec;
pub mod flood_limits;
pub mod frame_guard;
pub mod hpack;
pub mod io;
pub mod options;
pub mod request_body;
pub mod request_head;
pub mod response_writer;
pub mod server_stream;
pub mod stats;
pub mod violation;

pub use frame_guard::{FrameGuard, Violation};
pub use io::CodecIo;
pub use options::{Http2Options, Keepalive};
pub use request_body::{RequestBody, StreamRx};
pub use stats::{Http2CodecStats, LazyHttp2Stats};
