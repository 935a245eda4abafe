//! Courier's HTTP/2 codec (Envoy's `http/http2/codec_impl`), on the `h2` crate.
//!
//! `h2` does the framing, HPACK, stream states and flow control; what Envoy adds
//! on top (its settings defaults, the `http2.*` stats, the flood and abuse
//! limits `h2` lacks, stream-level errors instead of connection-level ones) is
//! Courier's, here.
//!
//! - `options` — `Http2ProtocolOptions` with Envoy's defaults, for both sides
//! - `stats` — Envoy's `http2.*` codec stats

pub mod options;
pub mod stats;

pub use options::Http2Options;
pub use stats::Http2CodecStats;
