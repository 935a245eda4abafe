//! `envoy.compression.zstd.compressor`: zstd frames with Envoy's defaults
//! (libzstd's default level 3 and strategy, no checksum, output chunks of
//! `ZSTD_CStreamOutSize()`).
//!
//! Unlike gzip and brotli, Envoy's zstd compressor does not flush each piece:
//! pieces are fed with `ZSTD_e_continue`, so only what libzstd has ready (whole
//! blocks, up to 128 KiB of input each) goes out as the body flows, and the
//! last piece ends the frame (`ZSTD_e_end`). Courier does the same.

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::compression::zstd::compressor::v3::zstd::Strategy as StrategyProto;
use envoy_types::pb::envoy::extensions::compression::zstd::compressor::v3::Zstd;
use envoy_types::pb::google::protobuf::Any;
use zstd::zstd_safe::{zstd_sys::ZSTD_EndDirective, CCtx, CParameter, InBuffer, OutBuffer, Strategy};

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::extensions::compression::{Compressor, CompressorFactory};

pub const CONFIG_TYPE: &str = "envoy.extensions.compression.zstd.compressor.v3.Zstd";

/// libzstd's `ZSTD_CLEVEL_DEFAULT`.
const DEFAULT_LEVEL: u32 = 3;

/// A compiled `Zstd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdFactory {
    /// As Envoy passes it: the proto's unsigned value, read by libzstd as an
    /// `int` (and clamped by it to its range; 0 is the default level).
    level: u32,
    enable_checksum: bool,
    /// None: libzstd's default (the proto's `DEFAULT`).
    strategy: Option<Strategy>,
    chunk_size: usize,
}

impl ZstdFactory {
    pub fn from_any(any: &Any, path: &FieldPath) -> Result<ZstdFactory, ConfigError> {
        let z: Zstd = decode_any(any, path)?;
        let strategy = match StrategyProto::try_from(z.strategy) {
            Ok(StrategyProto::Default) => None,
            Ok(StrategyProto::Fast) => Some(Strategy::ZSTD_fast),
            Ok(StrategyProto::Dfast) => Some(Strategy::ZSTD_dfast),
            Ok(StrategyProto::Greedy) => Some(Strategy::ZSTD_greedy),
            Ok(StrategyProto::Lazy) => Some(Strategy::ZSTD_lazy),
            Ok(StrategyProto::Lazy2) => Some(Strategy::ZSTD_lazy2),
            Ok(StrategyProto::Btlazy2) => Some(Strategy::ZSTD_btlazy2),
            Ok(StrategyProto::Btopt) => Some(Strategy::ZSTD_btopt),
            Ok(StrategyProto::Btultra) => Some(Strategy::ZSTD_btultra),
            Ok(StrategyProto::Btultra2) => Some(Strategy::ZSTD_btultra2),
            Err(_) => return Err(path.field_error("strategy", "not a known strategy")),
        };
        // chunk_size (4096..=65536) was checked with Envoy's validation rules when
        // the config was read; `dictionary` was refused by the supported-fields check.
        Ok(ZstdFactory {
            level: z.compression_level.map_or(DEFAULT_LEVEL, |v| v.value),
            enable_checksum: z.enable_checksum,
            strategy,
            chunk_size: z.chunk_size.map_or_else(CCtx::out_size, |v| v.value as usize),
        })
    }
}

impl CompressorFactory for ZstdFactory {
    fn create(&self) -> Box<dyn Compressor> {
        let mut cctx = CCtx::create();
        // libzstd accepts each of these (it clamps a level to its range) before a
        // frame starts; one it refused would leave its default, never a bad frame.
        let _ = cctx.set_parameter(CParameter::ChecksumFlag(self.enable_checksum));
        if let Some(strategy) = self.strategy {
            let _ = cctx.set_parameter(CParameter::Strategy(strategy));
        }
        let _ = cctx.set_parameter(CParameter::CompressionLevel(self.level as i32));
        Box::new(ZstdCompressor { cctx, chunk: vec![0; self.chunk_size], failed: false })
    }

    fn content_encoding(&self) -> &'static str {
        "zstd"
    }

    fn stats_prefix(&self) -> &'static str {
        "zstd"
    }
}

struct ZstdCompressor {
    cctx: CCtx<'static>,
    /// The output chunk libzstd writes into (`chunk_size` bytes).
    chunk: Vec<u8>,
    /// libzstd refused a call (only on misuse): nothing more comes.
    failed: bool,
}

impl ZstdCompressor {
    /// Envoy's `process`: `ZSTD_compressStream2` until the input is consumed
    /// (`ZSTD_e_continue`) or the frame is ended and flushed (`ZSTD_e_end`).
    fn process(&mut self, input: &[u8], mode: ZSTD_EndDirective, out: &mut Vec<u8>) {
        let mut input = InBuffer::around(input);
        loop {
            let mut output = OutBuffer::around(&mut self.chunk[..]);
            let result = self.cctx.compress_stream2(&mut output, &mut input, mode);
            let produced = output.pos();
            out.extend_from_slice(&self.chunk[..produced]);
            let finished = match result {
                Err(_) => {
                    self.failed = true;
                    return;
                }
                Ok(remaining) if mode == ZSTD_EndDirective::ZSTD_e_end => remaining == 0,
                Ok(_) => input.pos() == input.src.len(),
            };
            if finished {
                return;
            }
        }
    }
}

impl Compressor for ZstdCompressor {
    fn compress(&mut self, data: &[u8], end: bool) -> Bytes {
        let mut out = Vec::new();
        if !self.failed && !data.is_empty() {
            self.process(data, ZSTD_EndDirective::ZSTD_e_continue, &mut out);
        }
        if !self.failed && end {
            self.process(&[], ZSTD_EndDirective::ZSTD_e_end, &mut out);
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factory(yaml: &str) -> Result<ZstdFactory, ConfigError> {
        let any = crate::extensions::filters::http::test_util::any_from_yaml(CONFIG_TYPE, yaml);
        ZstdFactory::from_any(&any, &FieldPath::starting_at("compressor_library.typed_config"))
    }

    fn unzstd(bytes: &[u8]) -> Vec<u8> {
        zstd::stream::decode_all(bytes).expect("valid zstd")
    }

    #[test]
    fn pieces_compress_into_one_frame_ended_by_the_last() {
        let mut c = factory("{}").expect("defaults").create();
        let text = b"hello world, ".repeat(40_000);
        let mut out = Vec::new();
        for piece in text.chunks(10_000) {
            out.extend_from_slice(&c.compress(piece, false));
        }
        // Whole blocks went out as the body flowed, the rest waits for the end.
        assert!(!out.is_empty() && out.len() < 2000, "{} bytes before the end", out.len());
        out.extend_from_slice(&c.compress(b"", true));
        assert_eq!(unzstd(&out), text);
    }

    #[test]
    fn every_setting_is_read_and_used() {
        let f = factory("{compression_level: 19, enable_checksum: true, strategy: BTULTRA2, chunk_size: 4096}")
            .expect("valid");
        assert_eq!(
            f,
            ZstdFactory { level: 19, enable_checksum: true, strategy: Some(Strategy::ZSTD_btultra2), chunk_size: 4096 }
        );
        let text: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 1000).to_string().into_bytes()).collect();
        let out = f.create().compress(&text, true);
        assert_eq!(unzstd(&out), text);
        // The frame header says a checksum follows (Frame_Header_Descriptor bit 2).
        assert_eq!(out[4] & 0x04, 0x04);
        let plain = factory("{}").expect("defaults");
        assert_eq!((plain.level, plain.strategy, plain.chunk_size), (3, None, CCtx::out_size()));
        assert_eq!(plain.create().compress(b"abc", true)[4] & 0x04, 0);
        // Levels past libzstd's range are clamped by it, as in Envoy.
        let out = factory("{compression_level: 100}").expect("valid").create().compress(&text, true);
        assert_eq!(unzstd(&out), text);
    }

    #[test]
    fn an_empty_body_is_a_valid_frame() {
        let out = factory("{}").expect("defaults").create().compress(b"", true);
        assert_eq!(unzstd(&out), b"");
    }
}
