//! `envoy.compression.brotli.compressor`: brotli streams with Envoy's defaults
//! (quality 3, a 256 KiB window (`window_bits` 18), 16 MiB input blocks
//! (`input_block_bits` 24), the generic mode, 4 KiB output chunks).
//!
//! Like Envoy's, each piece of the body is fed to the encoder and then flushed
//! (`BROTLI_OPERATION_FLUSH`), so what arrives is sent at once; the last piece
//! finishes the stream (`BROTLI_OPERATION_FINISH`). Every setting is handed to
//! the encoder as Envoy hands it to the C library.

use ::brotli::enc::encode::{BrotliEncoderOperation, BrotliEncoderParameter, BrotliEncoderStateStruct};
use ::brotli::enc::interface::{PredictionModeContextMap, StaticCommand};
use ::brotli::enc::StandardAlloc;
use ::brotli::{InputPair, InputReferenceMut};
use bytes::Bytes;
use envoy_types::pb::envoy::extensions::compression::brotli::compressor::v3::brotli::EncoderMode;
use envoy_types::pb::envoy::extensions::compression::brotli::compressor::v3::Brotli;
use envoy_types::pb::google::protobuf::Any;

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::compression::{Compressor, CompressorFactory};

pub const CONFIG_TYPE: &str = "envoy.extensions.compression.brotli.compressor.v3.Brotli";

/// Envoy's defaults.
const DEFAULT_QUALITY: u32 = 3;
const DEFAULT_WINDOW_BITS: u32 = 18;
const DEFAULT_INPUT_BLOCK_BITS: u32 = 24;
const DEFAULT_CHUNK_SIZE: usize = 4096;

/// A compiled `Brotli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrotliFactory {
    quality: u32,
    window_bits: u32,
    input_block_bits: u32,
    /// The encoder's `BROTLI_PARAM_MODE`: generic 0, text 1, font 2.
    mode: u32,
    disable_literal_context_modeling: bool,
    chunk_size: usize,
}

impl BrotliFactory {
    pub fn from_any(any: &Any, path: &FieldPath) -> Result<BrotliFactory, ConfigError> {
        let b: Brotli = decode_any(any, path)?;
        let mode = match EncoderMode::try_from(b.encoder_mode) {
            Ok(EncoderMode::Default | EncoderMode::Generic) => 0,
            Ok(EncoderMode::Text) => 1,
            Ok(EncoderMode::Font) => 2,
            Err(_) => return Err(path.field_error("encoder_mode", "not a known encoder mode")),
        };
        // Ranges (quality <= 11, window_bits 10..=24, input_block_bits 16..=24,
        // chunk_size 4096..=65536) were checked with Envoy's validation rules when
        // the config was read; the clamps only keep the encoder's own limits.
        Ok(BrotliFactory {
            quality: b.quality.map_or(DEFAULT_QUALITY, |v| v.value.min(11)),
            window_bits: b.window_bits.map_or(DEFAULT_WINDOW_BITS, |v| v.value.clamp(10, 24)),
            input_block_bits: b.input_block_bits.map_or(DEFAULT_INPUT_BLOCK_BITS, |v| v.value.clamp(16, 24)),
            mode,
            disable_literal_context_modeling: b.disable_literal_context_modeling,
            chunk_size: b.chunk_size.map_or(DEFAULT_CHUNK_SIZE, |v| v.value as usize),
        })
    }
}

impl CompressorFactory for BrotliFactory {
    fn create(&self) -> Box<dyn Compressor> {
        let mut state = BrotliEncoderStateStruct::new(StandardAlloc::default());
        // Each is accepted before the first byte is encoded.
        for (param, value) in [
            (BrotliEncoderParameter::BROTLI_PARAM_QUALITY, self.quality),
            (BrotliEncoderParameter::BROTLI_PARAM_LGWIN, self.window_bits),
            (BrotliEncoderParameter::BROTLI_PARAM_LGBLOCK, self.input_block_bits),
            (
                BrotliEncoderParameter::BROTLI_PARAM_DISABLE_LITERAL_CONTEXT_MODELING,
                u32::from(self.disable_literal_context_modeling),
            ),
            (BrotliEncoderParameter::BROTLI_PARAM_MODE, self.mode),
        ] {
            state.set_parameter(param, value);
        }
        Box::new(BrotliCompressor { state, chunk: vec![0; self.chunk_size], failed: false })
    }

    fn content_encoding(&self) -> &'static str {
        "br"
    }

    fn stats_prefix(&self) -> &'static str {
        "brotli"
    }
}

struct BrotliCompressor {
    state: BrotliEncoderStateStruct<StandardAlloc>,
    /// The output chunk the encoder writes into (`chunk_size` bytes).
    chunk: Vec<u8>,
    /// The encoder refused an operation (only on misuse): nothing more comes.
    failed: bool,
}

impl BrotliCompressor {
    /// Runs `op` over `input` (all of it), appending what the encoder makes to
    /// `out`; with FLUSH or FINISH, until the encoder holds nothing more.
    fn run(&mut self, op: BrotliEncoderOperation, input: &[u8], out: &mut Vec<u8>) {
        let mut available_in = input.len();
        let mut in_offset = 0;
        loop {
            let mut available_out = self.chunk.len();
            let mut out_offset = 0;
            let ok = self.state.compress_stream(
                op,
                &mut available_in,
                input,
                &mut in_offset,
                &mut available_out,
                &mut self.chunk,
                &mut out_offset,
                &mut None,
                &mut no_metablock_callback,
            );
            out.extend_from_slice(&self.chunk[..out_offset.min(self.chunk.len())]);
            if !ok {
                self.failed = true;
                return;
            }
            let pending = available_in > 0 || self.state.has_more_output();
            let done = match op {
                BrotliEncoderOperation::BROTLI_OPERATION_FINISH => self.state.is_finished(),
                _ => !pending,
            };
            if done {
                return;
            }
        }
    }
}

/// The encoder reports each meta-block to a callback; Courier has no use for it.
fn no_metablock_callback(
    _: &mut PredictionModeContextMap<InputReferenceMut>,
    _: &mut [StaticCommand],
    _: InputPair,
    _: &mut StandardAlloc,
) {
}

impl Compressor for BrotliCompressor {
    fn compress(&mut self, data: &[u8], end: bool) -> Bytes {
        if self.failed {
            return Bytes::new();
        }
        let mut out = Vec::new();
        if !data.is_empty() {
            self.run(BrotliEncoderOperation::BROTLI_OPERATION_PROCESS, data, &mut out);
        }
        let op = if end {
            BrotliEncoderOperation::BROTLI_OPERATION_FINISH
        } else {
            BrotliEncoderOperation::BROTLI_OPERATION_FLUSH
        };
        if !self.failed {
            self.run(op, &[], &mut out);
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn factory(yaml: &str) -> Result<BrotliFactory, ConfigError> {
        let any = crate::extensions::filters::http::test_util::any_from_yaml(CONFIG_TYPE, yaml);
        BrotliFactory::from_any(&any, &FieldPath::starting_at("compressor_library.typed_config"))
    }

    fn unbrotli(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ::brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).expect("valid brotli");
        out
    }

    #[test]
    fn pieces_compress_into_one_stream_each_flushed() {
        let mut c = factory("{}").expect("defaults").create();
        let text = b"hello world, ".repeat(4000);
        let mut out = Vec::new();
        for piece in text.chunks(10_000) {
            let flushed = c.compress(piece, false);
            assert!(!flushed.is_empty(), "each piece goes out at once");
            out.extend_from_slice(&flushed);
            // What has gone out so far decodes to what came in so far.
            let mut partial = Vec::new();
            let _ = ::brotli::Decompressor::new(&out[..], 4096).read_to_end(&mut partial);
            assert_eq!(partial.len(), out_len_in(&text, piece));
        }
        out.extend_from_slice(&c.compress(b"", true));
        assert_eq!(unbrotli(&out), text);
        assert!(out.len() < text.len() / 50, "compressed: {} bytes", out.len());
    }

    /// How much of `text` ends with `piece` (pieces are slices of it).
    fn out_len_in(text: &[u8], piece: &[u8]) -> usize {
        piece.as_ptr() as usize - text.as_ptr() as usize + piece.len()
    }

    #[test]
    fn every_setting_is_read_and_used() {
        let f = factory(
            "{quality: 11, encoder_mode: TEXT, window_bits: 10, input_block_bits: 16, chunk_size: 8192, \
             disable_literal_context_modeling: true}",
        )
        .expect("valid");
        assert_eq!(
            f,
            BrotliFactory {
                quality: 11,
                window_bits: 10,
                input_block_bits: 16,
                mode: 1,
                disable_literal_context_modeling: true,
                chunk_size: 8192
            }
        );
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 1000).to_string().into_bytes()).collect();
        let out = f.create().compress(&text, true);
        assert_eq!(unbrotli(&out), text);
        let defaults = factory("{}").expect("defaults");
        assert_eq!((defaults.quality, defaults.window_bits, defaults.input_block_bits, defaults.mode), (3, 18, 24, 0));
        assert_eq!(factory("{encoder_mode: FONT}").expect("font").mode, 2);
    }

    #[test]
    fn an_empty_body_is_a_valid_stream() {
        let out = factory("{}").expect("defaults").create().compress(b"", true);
        assert!(!out.is_empty());
        assert_eq!(unbrotli(&out), b"");
    }
}
