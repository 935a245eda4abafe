//! Courier's HTTP/2 codec (Envoy's `http/http2/codec_impl`). Downstream, all
//! of it is Courier's: framing, stream states and flow control (`codec`),
//! HPACK (`hpack`), the request's head (`request_head`), Envoy's flood and
//! abuse limits, driven by the connection manager's `http2_connection` loop.
//! Upstream still runs on the `h2` crate, with the options and stats here.
//!
//! - `options` — `Http2ProtocolOptions` with Envoy's defaults, for both sides
//! - `stats` — Envoy's `http2.*` codec stats
//! - `io` — the transport as the codec sees it (replayed preface, byte counts)
//! - `flood_limits` — those limits' counters and formulas, for any codec
//! - `violation` — why a connection must end, for either codec
//! - `codec` — Courier's own HTTP/2 framing and server connection state
//!   machine, sans-IO: the downstream side
//! - `request_body` — a request body as the router reads it, window given back as read
//! - `response_writer` — a response onto a stream, as the peer's window allows
//! - `server_stream` — a downstream stream as its task sees it, over `codec`
//! - `hpack` — Courier's own HPACK (RFC 7541)
//! - `request_head` — a decoded request header list checked (RFC 9113 §8.2, §8.3)
//!   and made the request's head

pub mod codec;
pub mod flood_limits;
pub mod hpack;
pub mod io;
pub mod keepalive_pings;
pub mod options;
pub mod request_body;
pub mod request_head;
pub mod response_writer;
pub mod server_stream;
pub mod stats;
pub mod violation;

pub use io::CodecIo;
pub use keepalive_pings::KeepalivePings;
pub use options::{Http2Options, Keepalive};
pub use request_body::{RequestBody, StreamRx};
pub use stats::{Http2CodecStats, LazyHttp2Stats};
pub use violation::Violation;
