//! `envoy.compression.zstd.decompressor`: inflates zstd frames as Envoy's zstd
//! decompressor does.
//!
//! Envoy's rules (its `ZstdDecompressorImpl`), kept call for call: each
//! non-empty piece goes through `ZSTD_decompressStream` in `chunk_size` output
//! chunks until libzstd has consumed it; a refused stream counts one error per
//! piece that reaches it, by libzstd's error code (`zstd_checksum_wrong_error`,
//! `zstd_dictionary_error` for a frame that needs a dictionary,
//! `zstd_memory_error`, else `zstd_generic_error`), and yields nothing more. A
//! truncated stream is no error: it simply ends early; frames that follow one
//! another are all inflated.
//!
//! Decompression bombs: as for brotli, a piece whose output passes 100 times
//! its own size stops there (after the chunk that passed it) and counts
//! `zstd_generic_error`; the rest of that piece is dropped, so the stream
//! usually fails on the next one. Envoy 1.40 has no setting for the ratio
//! (checked by running it: a 2 KiB frame of 64 MiB stopped at 256 KiB, one
//! `zstd_generic_error`).

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::compression::zstd::decompressor::v3::Zstd;
use envoy_types::pb::google::protobuf::Any;
use zstd::zstd_safe::{self, zstd_sys::ZSTD_ErrorCode, DCtx, ErrorCode, InBuffer, OutBuffer};

use crate::config::{bootstrap::decode_any, ConfigError, FieldPath};
use crate::define_stats;
use crate::extensions::compression::{Decompressor, DecompressorFactory};
use crate::stats::Store;

pub const CONFIG_TYPE: &str = "envoy.extensions.compression.zstd.decompressor.v3.Zstd";

/// The most bytes one piece may inflate to, per byte of it (fixed in Envoy).
const MAX_INFLATE_RATIO: u64 = 100;

define_stats! {
    /// `<filter prefix>zstd.decompressor_library.*` (Envoy's zstd decompressor
    /// stats).
    #[derive(Debug)]
    pub struct ZstdStats {
        counter zstd_generic_error,
        counter zstd_dictionary_error,
        counter zstd_checksum_wrong_error,
        counter zstd_memory_error,
    }
}

/// A compiled `Zstd` decompressor, with the stats of the filter that names it.
#[derive(Debug)]
pub struct ZstdDecompressorFactory {
    chunk_size: usize,
    stats: Arc<ZstdStats>,
}

impl ZstdDecompressorFactory {
    /// `stats_prefix`: the filter's, ending in `.`; the library's stats go under
    /// `<stats_prefix>zstd.decompressor_library.`.
    pub fn from_any(
        any: &Any,
        path: &FieldPath,
        store: &Store,
        stats_prefix: &str,
    ) -> Result<ZstdDecompressorFactory, ConfigError> {
        let z: Zstd = decode_any(any, path)?;
        // chunk_size (4096..=65536) was checked with Envoy's validation rules when
        // the config was read; `dictionaries` was refused by the supported-fields check.
        let chunk_size = z.chunk_size.map_or_else(DCtx::out_size, |v| v.value as usize);
        let stats = ZstdStats::new(store, &format!("{stats_prefix}zstd.decompressor_library."));
        Ok(ZstdDecompressorFactory { chunk_size, stats: Arc::new(stats) })
    }
}

impl DecompressorFactory for ZstdDecompressorFactory {
    fn create(&self) -> Box<dyn Decompressor> {
        Box::new(ZstdDecompressor {
            dctx: DCtx::create(),
            chunk: vec![0; self.chunk_size],
            stats: self.stats.clone(),
            failed: None,
        })
    }

    fn content_encoding(&self) -> &'static str {
        "zstd"
    }

    fn stats_prefix(&self) -> &'static str {
        "zstd"
    }
}

struct ZstdDecompressor {
    dctx: DCtx<'static>,
    /// The output chunk libzstd writes into (`chunk_size` bytes).
    chunk: Vec<u8>,
    stats: Arc<ZstdStats>,
    /// The error that stopped the stream: libzstd answers every later piece
    /// with it again, and each is counted.
    failed: Option<ErrorCode>,
}

impl ZstdDecompressor {
    /// Counts `code` as Envoy's `isError` does.
    fn count(&self, code: ErrorCode) {
        let is = |kind| zstd_safe::is_error_kind(code, kind);
        let counter = if is(ZSTD_ErrorCode::ZSTD_error_memory_allocation) {
            &self.stats.zstd_memory_error
        } else if is(ZSTD_ErrorCode::ZSTD_error_dictionary_corrupted) || is(ZSTD_ErrorCode::ZSTD_error_dictionary_wrong)
        {
            &self.stats.zstd_dictionary_error
        } else if is(ZSTD_ErrorCode::ZSTD_error_checksum_wrong) {
            &self.stats.zstd_checksum_wrong_error
        } else {
            &self.stats.zstd_generic_error
        };
        counter.inc();
    }
}

impl Decompressor for ZstdDecompressor {
    fn decompress(&mut self, data: &[u8]) -> Bytes {
        if data.is_empty() {
            return Bytes::new();
        }
        if let Some(code) = self.failed {
            self.count(code);
            return Bytes::new();
        }
        let limit = MAX_INFLATE_RATIO.saturating_mul(data.len() as u64);
        let mut out = Vec::new();
        let mut input = InBuffer::around(data);
        while input.pos() < data.len() {
            let mut output = OutBuffer::around(&mut self.chunk[..]);
            let result = self.dctx.decompress_stream(&mut output, &mut input);
            let produced = output.pos();
            if let Err(code) = result {
                self.count(code);
                self.failed = Some(code);
                break;
            }
            out.extend_from_slice(&self.chunk[..produced]);
            if out.len() as u64 > limit {
                self.stats.zstd_generic_error.inc();
                break;
            }
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Store;

    fn zstd(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut cctx = zstd_safe::CCtx::create();
        cctx.set_parameter(zstd_safe::CParameter::ChecksumFlag(checksum)).expect("a checksum");
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
        cctx.compress2(&mut out, data).expect("into a Vec");
        out
    }

    fn factory(yaml: &str, store: &Store) -> ZstdDecompressorFactory {
        let any = crate::extensions::filters::http::test_util::any_from_yaml(CONFIG_TYPE, yaml);
        ZstdDecompressorFactory::from_any(
            &any,
            &FieldPath::starting_at("decompressor_library.typed_config"),
            store,
            "d.",
        )
        .expect("valid")
    }

    fn counter(store: &Store, name: &str) -> u64 {
        store.counter(&format!("d.zstd.decompressor_library.{name}")).value()
    }

    #[test]
    fn frames_inflate_across_pieces() {
        let store = Store::new();
        // Numbers inflate a few times only: under the ratio whatever the pieces.
        let text: Vec<u8> = (0..3000u32).flat_map(|i| format!("{i},").into_bytes()).collect();
        let mut compressed = zstd(&text, true);
        // A second frame after the first is inflated too.
        compressed.extend_from_slice(&zstd(b"and more", false));
        let mut want = text.clone();
        want.extend_from_slice(b"and more");
        // A piece that completes a block releases the whole block at once, so
        // each piece here is large enough for the ratio.
        for piece in [compressed.len() / 2 + 1, compressed.len()] {
            let mut d = factory("{chunk_size: 4096}", &store).create();
            let out: Vec<u8> = compressed.chunks(piece).flat_map(|p| d.decompress(p).to_vec()).collect();
            assert!(out == want, "pieces of {piece}: {} bytes", out.len());
        }
        assert_eq!(counter(&store, "zstd_generic_error"), 0);
    }

    #[test]
    fn garbage_is_counted_once_per_piece() {
        let store = Store::new();
        let mut d = factory("{}", &store).create();
        assert!(d.decompress(b"this is not zstd at all").is_empty());
        assert!(d.decompress(b"nor this").is_empty());
        assert!(d.decompress(b"").is_empty(), "an empty piece is not looked at");
        assert_eq!(counter(&store, "zstd_generic_error"), 2);
    }

    #[test]
    fn a_wrong_checksum_and_a_missing_dictionary_are_counted_apart() {
        let store = Store::new();
        let mut frame = zstd(b"checked content, checked content", true);
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        factory("{}", &store).create().decompress(&frame);
        assert_eq!(counter(&store, "zstd_checksum_wrong_error"), 1);
        // A frame naming dictionary 7: Frame_Header_Descriptor 0x01 (a 1-byte
        // dictionary id), Window_Descriptor, the id, then one raw last block "a".
        let needs_dictionary = [0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x00, 0x07, 0x09, 0x00, 0x00, b'a'];
        factory("{}", &store).create().decompress(&needs_dictionary);
        assert_eq!(counter(&store, "zstd_dictionary_error"), 1);
        assert_eq!(counter(&store, "zstd_generic_error"), 0);
    }

    #[test]
    fn a_truncated_stream_yields_what_it_holds_and_no_error() {
        let store = Store::new();
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let compressed = zstd(&text, false);
        let out = factory("{}", &store).create().decompress(&compressed[..compressed.len() / 2]);
        assert!(out.len() < text.len() && text.starts_with(&out));
        // Cut and flipped streams never panic.
        for cut in [1, 4, 5, 10, compressed.len() - 1] {
            let mut bad = compressed[..cut].to_vec();
            if let Some(b) = bad.last_mut() {
                *b ^= 0x5a;
            }
            factory("{}", &store).create().decompress(&bad);
        }
        assert_eq!(counter(&store, "zstd_checksum_wrong_error"), 0);
    }

    #[test]
    fn a_piece_inflating_past_100_times_its_size_stops() {
        let store = Store::new();
        let bomb = zstd(&vec![b'x'; 64 << 20], false);
        assert!(bomb.len() * 100 < 64 << 20, "{} bytes", bomb.len());
        let out = factory("{}", &store).create().decompress(&bomb);
        // Envoy's figures for this frame: two chunks of 128 KiB out, one error.
        assert_eq!(out.len(), 2 * DCtx::out_size());
        assert_eq!(counter(&store, "zstd_generic_error"), 1);
        assert!(out.iter().all(|&b| b == b'x'));
    }
}
