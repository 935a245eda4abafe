//! `envoy.compression.gzip.compressor`: gzip streams with Envoy's defaults
//! (zlib's default level 6, a 4 KiB window (`window_bits` 12), 4 KiB output
//! chunks), on zlib-rs, a Rust port of zlib.
//!
//! Like Envoy's, each piece of the body is compressed and flushed, so what arrives
//! is sent at once (a few bytes more than one stream compressed whole). `memory_level` is read and checked but
//! flate2 does not expose zlib's memory level: the stream is compressed at zlib's
//! default (8), which changes the ratio and the compressor's memory, never what
//! the client decompresses.

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::gzip::{
    CompressionLevel, CompressionStrategy,
};
use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::Gzip;
use envoy_types::pb::google::protobuf::Any;
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::compression::{Compressor, CompressorFactory};

pub const CONFIG_TYPE: &str = "envoy.extensions.compression.gzip.compressor.v3.Gzip";

/// A compiled `Gzip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipFactory {
    level: u32,
    window_bits: u8,
    chunk_size: usize,
}

impl GzipFactory {
    pub fn from_any(any: &Any, path: &FieldPath) -> Result<GzipFactory, ConfigError> {
        let g: Gzip = decode_any(any, path)?;
        let level = match CompressionLevel::try_from(g.compression_level) {
            // zlib's Z_DEFAULT_COMPRESSION.
            Ok(CompressionLevel::DefaultCompression) => 6,
            Ok(level) => level as u32,
            Err(_) => return Err(path.field_error("compression_level", "not a known compression level")),
        };
        if CompressionStrategy::try_from(g.compression_strategy) != Ok(CompressionStrategy::DefaultStrategy) {
            return Err(path.field_error(
                "compression_strategy",
                "only DEFAULT_STRATEGY is supported by Courier (its deflate has no strategy setting)",
            ));
        }
        // Ranges (window_bits 9..=15, memory_level 1..=9, chunk_size 4096..=65536)
        // were checked with Envoy's validation rules when the config was read.
        let window_bits = g.window_bits.map_or(12, |v| v.value).clamp(9, 15) as u8;
        let chunk_size = g.chunk_size.map_or(4096, |v| v.value) as usize;
        Ok(GzipFactory { level, window_bits, chunk_size })
    }
}

impl CompressorFactory for GzipFactory {
    fn create(&self) -> Box<dyn Compressor> {
        Box::new(GzipCompressor {
            stream: Compress::new_gzip(Compression::new(self.level), self.window_bits),
            chunk_size: self.chunk_size,
        })
    }

    fn content_encoding(&self) -> &'static str {
        "gzip"
    }

    fn stats_prefix(&self) -> &'static str {
        "gzip"
    }
}

struct GzipCompressor {
    stream: Compress,
    chunk_size: usize,
}

impl Compressor for GzipCompressor {
    fn compress(&mut self, data: &[u8], end: bool) -> Bytes {
        // Each piece is flushed (zlib's Z_SYNC_FLUSH), as Envoy's compressor does, so
        // a streamed body reaches the client as it comes rather than at the end.
        let flush = if end { FlushCompress::Finish } else { FlushCompress::Sync };
        let mut out = Vec::new();
        let mut input = data;
        loop {
            out.reserve(self.chunk_size);
            let before = self.stream.total_in();
            let status = self.stream.compress_vec(input, &mut out, flush);
            let consumed = (self.stream.total_in() - before) as usize;
            input = &input[consumed.min(input.len())..];
            match status {
                Ok(Status::StreamEnd) => break,
                // More output is pending only while the output filled up.
                Ok(Status::Ok) | Ok(Status::BufError) if input.is_empty() && out.len() < out.capacity() => {
                    if !end {
                        break;
                    }
                }
                Ok(_) => {}
                // A deflate stream fails only on misuse; what was produced goes out.
                Err(_) => break,
            }
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn factory(yaml: &str) -> Result<GzipFactory, ConfigError> {
        let any = crate::extensions::filters::http::test_util::any_from_yaml(CONFIG_TYPE, yaml);
        GzipFactory::from_any(&any, &FieldPath::starting_at("compressor_library.typed_config"))
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
        out
    }

    #[test]
    fn pieces_compress_into_one_gzip_stream() {
        let mut c = factory("{}").expect("defaults").create();
        let text = b"hello world, ".repeat(400);
        let mut out = Vec::new();
        for piece in text.chunks(1000) {
            out.extend_from_slice(&c.compress(piece, false));
        }
        out.extend_from_slice(&c.compress(b"", true));
        assert_eq!(gunzip(&out), text);
        assert!(out.len() < text.len() / 10, "compressed: {} bytes", out.len());
    }

    #[test]
    fn every_setting_is_read_and_checked() {
        let f = factory("{compression_level: BEST_SPEED, window_bits: 10, memory_level: 3, chunk_size: 8192}")
            .expect("valid");
        assert_eq!(f, GzipFactory { level: 1, window_bits: 10, chunk_size: 8192 });
        let mut c = f.create();
        let out = c.compress(b"abc", true);
        assert_eq!(gunzip(&out), b"abc");
        let e = factory("{compression_strategy: RLE}").expect_err("a strategy").to_string();
        assert!(e.contains("compressor_library.typed_config.compression_strategy"), "{e}");
        let defaults = factory("{}").expect("defaults");
        assert_eq!(defaults, GzipFactory { level: 6, window_bits: 12, chunk_size: 4096 });
    }
}
