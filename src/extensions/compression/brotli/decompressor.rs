//! `envoy.compression.brotli.decompressor`: inflates brotli streams as Envoy's
//! brotli decompressor does, with its guard against decompression bombs.
//!
//! Envoy's rules (its `BrotliDecompressorImpl`), kept call for call: each piece
//! is decoded in `chunk_size` output chunks; a stream the decoder refuses counts
//! `brotli_error` and yields nothing more, and since the decoder keeps refusing
//! it, every later piece (an empty one too) counts again. A piece whose output
//! passes 100 times its own size stops there and counts `brotli_error` too
//! (brotli has no `max_inflate_ratio` setting in Envoy: the ratio is fixed); the
//! rest of that piece is dropped, so the stream usually fails on the next one. A
//! truncated stream is no error: it simply ends early. What follows a finished
//! stream is ignored. The decoder is a safe-Rust port of Google's, set up as the
//! C library starts (no large windows).

use std::sync::Arc;

use ::brotli::enc::StandardAlloc;
use ::brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
use brotli_decompressor::{BrotliDecoderHasMoreOutput, BrotliDecoderParameter};
use bytes::Bytes;
use envoy_types::pb::envoy::extensions::compression::brotli::decompressor::v3::Brotli;
use envoy_types::pb::google::protobuf::Any;

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::compression::{Decompressor, DecompressorFactory};
use crate::stats::Store;

pub const CONFIG_TYPE: &str = "envoy.extensions.compression.brotli.decompressor.v3.Brotli";

/// Envoy's defaults: 4 KiB output chunks, and at most 100 bytes out per byte in
/// (a constant in Envoy's brotli decompressor).
const DEFAULT_CHUNK_SIZE: usize = 4096;
const MAX_INFLATE_RATIO: u64 = 100;

define_stats! {
    /// `<filter prefix>brotli.decompressor_library.*` (Envoy's brotli
    /// decompressor stats).
    #[derive(Debug)]
    pub struct BrotliStats {
        counter brotli_error,
    }
}

/// A compiled `Brotli` decompressor, with the stats of the filter that names it.
#[derive(Debug)]
pub struct BrotliDecompressorFactory {
    chunk_size: usize,
    disable_ring_buffer_reallocation: bool,
    stats: Arc<BrotliStats>,
}

impl BrotliDecompressorFactory {
    /// `stats_prefix`: the filter's, ending in `.`; the library's stats go under
    /// `<stats_prefix>brotli.decompressor_library.`.
    pub fn from_any(
        any: &Any,
        path: &FieldPath,
        store: &Store,
        stats_prefix: &str,
    ) -> Result<BrotliDecompressorFactory, ConfigError> {
        let b: Brotli = decode_any(any, path)?;
        // chunk_size (4096..=65536) was checked with Envoy's validation rules
        // when the config was read.
        let chunk_size = b.chunk_size.map_or(DEFAULT_CHUNK_SIZE, |v| v.value as usize);
        let stats = BrotliStats::new(store, &format!("{stats_prefix}brotli.decompressor_library."));
        Ok(BrotliDecompressorFactory {
            chunk_size,
            disable_ring_buffer_reallocation: b.disable_ring_buffer_reallocation,
            stats: Arc::new(stats),
        })
    }
}

type State = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

impl DecompressorFactory for BrotliDecompressorFactory {
    fn create(&self) -> Box<dyn Decompressor> {
        let mut state = State::new(StandardAlloc::default(), StandardAlloc::default(), StandardAlloc::default());
        // Both are accepted before the first byte is decoded.
        state.set_parameter(
            BrotliDecoderParameter::BROTLI_DECODER_PARAM_DISABLE_RING_BUFFER_REALLOCATION,
            u32::from(self.disable_ring_buffer_reallocation),
        );
        state.set_parameter(BrotliDecoderParameter::BROTLI_DECODER_PARAM_LARGE_WINDOW, 0);
        Box::new(BrotliDecompressor {
            state,
            chunk: vec![0; self.chunk_size],
            stats: self.stats.clone(),
            finished: false,
        })
    }

    fn content_encoding(&self) -> &'static str {
        "br"
    }

    fn stats_prefix(&self) -> &'static str {
        "brotli"
    }
}

struct BrotliDecompressor {
    state: State,
    /// The output chunk the decoder writes into (`chunk_size` bytes).
    chunk: Vec<u8>,
    stats: Arc<BrotliStats>,
    /// The stream ended: what follows is ignored.
    finished: bool,
}

/// One call's progress: its input, the output chunk's fill, the pieces out.
struct Call<'a> {
    input: &'a [u8],
    in_offset: usize,
    chunk_used: usize,
    out: Vec<u8>,
    max_out: u64,
}

impl BrotliDecompressor {
    /// One decoder step (Envoy's `process`): false when the call must stop.
    fn step(&mut self, call: &mut Call<'_>) -> bool {
        let mut available_in = call.input.len() - call.in_offset;
        let mut available_out = self.chunk.len() - call.chunk_used;
        let mut total_out = 0;
        let result = BrotliDecompressStream(
            &mut available_in,
            &mut call.in_offset,
            call.input,
            &mut available_out,
            &mut call.chunk_used,
            &mut self.chunk,
            &mut total_out,
            &mut self.state,
        );
        match result {
            BrotliResult::ResultFailure => {
                self.stats.brotli_error.inc();
                return false;
            }
            BrotliResult::ResultSuccess => self.finished = true,
            BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
        }
        // Envoy compares what it already moved out (whole chunks) with the limit.
        if call.out.len() as u64 > call.max_out {
            self.stats.brotli_error.inc();
            return false;
        }
        if call.chunk_used == self.chunk.len() {
            call.out.extend_from_slice(&self.chunk);
            call.chunk_used = 0;
        }
        true
    }
}

impl Decompressor for BrotliDecompressor {
    fn decompress(&mut self, data: &[u8]) -> Bytes {
        if self.finished {
            return Bytes::new();
        }
        let mut call = Call {
            input: data,
            in_offset: 0,
            chunk_used: 0,
            out: Vec::new(),
            max_out: MAX_INFLATE_RATIO.saturating_mul(data.len() as u64),
        };
        let mut ok = true;
        while ok && call.in_offset < data.len() && !self.finished {
            let before = (call.in_offset, call.chunk_used, call.out.len());
            ok = self.step(&mut call);
            // The decoder always consumes or produces; never spin if it did not.
            if before == (call.in_offset, call.chunk_used, call.out.len()) {
                break;
            }
        }
        // The input is consumed but may still unfold into more than the chunk
        // held: drain the decoder (at least one step, as Envoy does).
        if ok && !self.finished {
            while self.step(&mut call) && BrotliDecoderHasMoreOutput(&self.state) {}
        }
        let used = call.chunk_used;
        call.out.extend_from_slice(&self.chunk[..used]);
        Bytes::from(call.out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::stats::Store;

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = ::brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).expect("into a Vec");
        }
        out
    }

    fn factory(yaml: &str, store: &Store) -> BrotliDecompressorFactory {
        let any = crate::extensions::filters::http::test_util::any_from_yaml(CONFIG_TYPE, yaml);
        BrotliDecompressorFactory::from_any(
            &any,
            &FieldPath::starting_at("decompressor_library.typed_config"),
            store,
            "d.",
        )
        .expect("valid")
    }

    const ERRORS: &str = "d.brotli.decompressor_library.brotli_error";

    #[test]
    fn a_stream_inflates_across_pieces_of_any_size() {
        let store = Store::new();
        // Numbers inflate about 5 times: under the ratio whatever the pieces.
        let text: Vec<u8> = (0..3000u32).flat_map(|i| format!("{i},").into_bytes()).collect();
        let compressed = brotli(&text);
        for piece in [1, 7, 100, compressed.len()] {
            let mut d = factory("{chunk_size: 4096, disable_ring_buffer_reallocation: true}", &store).create();
            let out: Vec<u8> = compressed.chunks(piece).flat_map(|p| d.decompress(p).to_vec()).collect();
            assert!(out == text, "pieces of {piece}: {} bytes", out.len());
            // What follows the finished stream is ignored.
            assert!(d.decompress(b"trailing").is_empty());
        }
        assert_eq!(store.counter(ERRORS).value(), 0);
    }

    #[test]
    fn garbage_is_counted_on_every_later_piece() {
        let store = Store::new();
        let mut d = factory("{}", &store).create();
        assert!(d.decompress(&[0xff; 64]).is_empty());
        assert!(d.decompress(b"nor this").is_empty());
        assert!(d.decompress(b"").is_empty());
        assert_eq!(store.counter(ERRORS).value(), 3);
    }

    #[test]
    fn a_truncated_stream_yields_what_it_holds_and_no_error() {
        let store = Store::new();
        let text: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let compressed = brotli(&text);
        let mut d = factory("{}", &store).create();
        let out = d.decompress(&compressed[..compressed.len() / 2]);
        assert!(out.len() < text.len() && text.starts_with(&out));
        assert_eq!(store.counter(ERRORS).value(), 0);
        // Random cuts and flipped bytes never panic.
        for cut in [1, 2, 3, 10, compressed.len() - 1] {
            let mut bad = compressed[..cut].to_vec();
            if let Some(b) = bad.last_mut() {
                *b ^= 0x5a;
            }
            factory("{}", &store).create().decompress(&bad);
        }
    }

    #[test]
    fn a_piece_inflating_past_100_times_its_size_stops() {
        let store = Store::new();
        let bomb = brotli(&vec![b'x'; 1 << 20]);
        assert!(bomb.len() * 100 < 1 << 20, "the test needs a ratio over 100");
        let out = factory("{}", &store).create().decompress(&bomb);
        assert!(out.len() as u64 <= 100 * bomb.len() as u64 + 2 * 4096, "{} bytes out", out.len());
        assert_eq!(store.counter(ERRORS).value(), 1);
    }
}
