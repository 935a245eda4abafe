//! `envoy.compression.gzip.decompressor`: inflates gzip streams as Envoy's zlib
//! decompressor does, with its guard against decompression bombs.
//!
//! Checked against Envoy 1.40 (tests/compat `filter_decompressor`): a stream zlib
//! refuses yields nothing more and is counted (`decompressor_library.zlib_data_error`,
//! once per piece that reaches the broken stream), and the body ends normally; a
//! piece that would inflate to more than `max_inflate_ratio` times its size stops
//! there, counted the same way, and the rest of the stream is refused.

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::compression::gzip::decompressor::v3::Gzip;
use envoy_types::pb::google::protobuf::Any;
use flate2::{Decompress, FlushDecompress, Status};

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::compression::{Decompressor, DecompressorFactory};
use crate::stats::Store;

pub const CONFIG_TYPE: &str = "envoy.extensions.compression.gzip.decompressor.v3.Gzip";

/// Envoy's defaults: a full 32 KiB window, 4 KiB output chunks, and at most 100
/// bytes out per byte in.
const DEFAULT_WINDOW_BITS: u8 = 15;
const DEFAULT_CHUNK_SIZE: usize = 4096;
const DEFAULT_MAX_INFLATE_RATIO: u64 = 100;

define_stats! {
    /// `<filter prefix>gzip.decompressor_library.*` (Envoy's zlib decompressor
    /// stats; Courier counts the data errors, which are all that inflating a
    /// received stream can meet, and keeps the others at 0 as Envoy shows them).
    #[derive(Debug)]
    pub struct ZlibStats {
        counter zlib_errno,
        counter zlib_stream_error,
        counter zlib_data_error,
        counter zlib_mem_error,
        counter zlib_buf_error,
        counter zlib_version_error,
    }
}

/// A compiled `Gzip` decompressor, with the stats of the filter that names it.
#[derive(Debug)]
pub struct GzipDecompressorFactory {
    window_bits: u8,
    chunk_size: usize,
    max_inflate_ratio: u64,
    stats: std::sync::Arc<ZlibStats>,
}

impl GzipDecompressorFactory {
    /// `stats_prefix`: the filter's, ending in `.`; the library's stats go under
    /// `<stats_prefix>gzip.decompressor_library.`.
    pub fn from_any(
        any: &Any,
        path: &FieldPath,
        store: &Store,
        stats_prefix: &str,
    ) -> Result<GzipDecompressorFactory, ConfigError> {
        let g: Gzip = decode_any(any, path)?;
        // Ranges (window_bits 9..=15, chunk_size 4096..=65536, max_inflate_ratio
        // 1..=2000) were checked with Envoy's validation rules when the config was read.
        let window_bits = g.window_bits.map_or(DEFAULT_WINDOW_BITS, |v| v.value.clamp(9, 15) as u8);
        let chunk_size = g.chunk_size.map_or(DEFAULT_CHUNK_SIZE, |v| v.value as usize);
        let max_inflate_ratio = g.max_inflate_ratio.map_or(DEFAULT_MAX_INFLATE_RATIO, |v| u64::from(v.value));
        let stats = ZlibStats::new(store, &format!("{stats_prefix}gzip.decompressor_library."));
        Ok(GzipDecompressorFactory { window_bits, chunk_size, max_inflate_ratio, stats: std::sync::Arc::new(stats) })
    }
}

impl DecompressorFactory for GzipDecompressorFactory {
    fn create(&self) -> Box<dyn Decompressor> {
        Box::new(GzipDecompressor {
            stream: Decompress::new_gzip(self.window_bits),
            chunk_size: self.chunk_size,
            max_inflate_ratio: self.max_inflate_ratio,
            stats: self.stats.clone(),
            state: State::Inflating,
        })
    }

    fn content_encoding(&self) -> &'static str {
        "gzip"
    }

    fn stats_prefix(&self) -> &'static str {
        "gzip"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Inflating,
    /// The gzip stream ended: what follows it is ignored, as zlib does.
    Ended,
    /// zlib refused the stream (or a piece inflated too far): nothing more comes.
    Failed,
}

struct GzipDecompressor {
    stream: Decompress,
    chunk_size: usize,
    max_inflate_ratio: u64,
    stats: std::sync::Arc<ZlibStats>,
    state: State,
}

impl Decompressor for GzipDecompressor {
    fn decompress(&mut self, data: &[u8]) -> Bytes {
        match self.state {
            State::Inflating => {}
            State::Ended => return Bytes::new(),
            // zlib keeps answering a broken stream with Z_DATA_ERROR, which Envoy
            // counts each time.
            State::Failed => {
                if !data.is_empty() {
                    self.stats.zlib_data_error.inc();
                }
                return Bytes::new();
            }
        }
        let limit = self.max_inflate_ratio.saturating_mul(data.len() as u64);
        let mut out: Vec<u8> = Vec::new();
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve_exact(self.chunk_size);
            }
            let before = self.stream.total_in();
            let status = self.stream.decompress_vec(input, &mut out, FlushDecompress::None);
            let consumed = (self.stream.total_in() - before) as usize;
            input = &input[consumed.min(input.len())..];
            match status {
                Ok(Status::StreamEnd) => {
                    self.state = State::Ended;
                    break;
                }
                Err(_) => {
                    self.stats.zlib_data_error.inc();
                    self.state = State::Failed;
                    break;
                }
                // No progress is possible without more input (or more room).
                Ok(Status::Ok | Status::BufError) if input.is_empty() && out.len() < out.capacity() => break,
                Ok(_) => {}
            }
            if out.len() as u64 > limit {
                self.stats.zlib_data_error.inc();
                self.state = State::Failed;
                break;
            }
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::stats::Store;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(data).expect("into a Vec");
        gz.finish().expect("into a Vec")
    }

    fn factory(yaml: &str, store: &Store) -> GzipDecompressorFactory {
        let any = crate::extensions::filters::http::test_util::any_from_yaml(CONFIG_TYPE, yaml);
        GzipDecompressorFactory::from_any(
            &any,
            &FieldPath::starting_at("decompressor_library.typed_config"),
            store,
            "d.",
        )
        .expect("valid")
    }

    #[test]
    fn a_stream_inflates_across_pieces_of_any_size() {
        let store = Store::new();
        let text = b"hello world, ".repeat(500);
        let compressed = gzip(&text);
        for piece in [1, 7, 100, compressed.len()] {
            let mut d = factory("{chunk_size: 4096}", &store).create();
            let out: Vec<u8> = compressed.chunks(piece).flat_map(|p| d.decompress(p).to_vec()).collect();
            assert_eq!(out, text, "pieces of {piece}");
        }
        assert_eq!(store.counter("d.gzip.decompressor_library.zlib_data_error").value(), 0);
    }

    #[test]
    fn a_broken_stream_yields_nothing_more_and_is_counted_per_piece() {
        let store = Store::new();
        let mut d = factory("{}", &store).create();
        assert!(d.decompress(b"this is not gzip at all").is_empty());
        assert!(d.decompress(b"nor this").is_empty());
        assert_eq!(store.counter("d.gzip.decompressor_library.zlib_data_error").value(), 2);
    }

    #[test]
    fn max_inflate_ratio_stops_a_bomb() {
        let store = Store::new();
        let bomb = gzip(&vec![b'x'; 1 << 20]);
        assert!(bomb.len() * 100 < 1 << 20, "the test needs a ratio over 100");
        let out = factory("{}", &store).create().decompress(&bomb);
        assert!(out.len() as u64 <= 100 * bomb.len() as u64 + 4096 * 2, "{} bytes out", out.len());
        assert_eq!(store.counter("d.gzip.decompressor_library.zlib_data_error").value(), 1);
        // With room for the ratio it inflates whole.
        let ratio = (1 << 20) / bomb.len() + 1;
        assert!(ratio <= 1032, "Envoy's largest max_inflate_ratio");
        let out = factory(&format!("{{max_inflate_ratio: {ratio}}}"), &store).create().decompress(&bomb);
        assert_eq!(out.len(), 1 << 20);
    }

    #[test]
    fn window_bits_smaller_than_the_stream_s_refuse_it() {
        let store = Store::new();
        let text: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut d = factory("{window_bits: 9}", &store).create();
        d.decompress(&gzip(&text));
        assert_eq!(store.counter("d.gzip.decompressor_library.zlib_data_error").value(), 1);
    }
}
