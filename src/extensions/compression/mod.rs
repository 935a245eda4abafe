//! Compression libraries (Envoy's `extensions/compression/`): what a
//! `compressor_library` or `decompressor_library` names. The compressor filter
//! asks one for a fresh `Compressor` per response it compresses, the
//! decompressor filter for a `Decompressor` per body it inflates; each library
//! says which `content-encoding` it handles and the stats prefix Envoy gives it.
//!
//! - `gzip` — `envoy.compression.gzip.compressor` and `.decompressor` (zlib-rs
//!   through flate2)
//! - `brotli` — `envoy.compression.brotli.compressor` and `.decompressor`
//!   (`content-encoding: br`; the pure-Rust brotli port)
//! - `zstd` — `envoy.compression.zstd.compressor` and `.decompressor` (libzstd)

pub mod brotli;
pub mod gzip;
pub mod zstd;

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;

use crate::config::{descriptor, ConfigError, FieldPath};
use crate::stats::Store;

/// One response's compression state.
pub trait Compressor {
    /// Compresses `data`; `end`: the body ends with it, so everything still held
    /// is flushed and the stream closed. Returns what is ready to send (possibly
    /// nothing until more arrives).
    fn compress(&mut self, data: &[u8], end: bool) -> Bytes;
}

/// A library's config, shared by every worker.
pub trait CompressorFactory: Send + Sync + Debug {
    fn create(&self) -> Box<dyn Compressor>;
    /// The `content-encoding` (and `accept-encoding` token) it produces.
    fn content_encoding(&self) -> &'static str;
    /// The last part of the filter's stats prefix (`...compressor.<name>.gzip.`).
    fn stats_prefix(&self) -> &'static str;
}

/// One body's decompression state.
pub trait Decompressor {
    /// Inflates a piece of the body; returns what it makes of it, possibly
    /// nothing yet. A stream the library refuses yields nothing more (counted in
    /// the library's stats): the body goes on without it, as Envoy's does.
    fn decompress(&mut self, data: &[u8]) -> Bytes;
}

/// A decompression library's config, shared by every worker.
pub trait DecompressorFactory: Send + Sync + Debug {
    fn create(&self) -> Box<dyn Decompressor>;
    /// The `content-encoding` it inflates.
    fn content_encoding(&self) -> &'static str;
    /// The last part of the filter's stats prefix (`...decompressor.<name>.gzip.`).
    fn stats_prefix(&self) -> &'static str;
}

/// The config types of the libraries Courier ships.
pub const CONFIG_TYPES: &[&str] = &[
    gzip::compressor::CONFIG_TYPE,
    gzip::decompressor::CONFIG_TYPE,
    brotli::compressor::CONFIG_TYPE,
    brotli::decompressor::CONFIG_TYPE,
    zstd::compressor::CONFIG_TYPE,
    zstd::decompressor::CONFIG_TYPE,
];

/// Builds the library `library` names; `path` points at it.
pub fn create_compressor_factory(
    library: &TypedExtensionConfig,
    path: &FieldPath,
) -> Result<Arc<dyn CompressorFactory>, ConfigError> {
    let Some(any) = &library.typed_config else { return Err(path.field_error("typed_config", "value is required")) };
    let mut p = path.clone();
    p.push_field("typed_config");
    match descriptor::type_name(&any.type_url) {
        gzip::compressor::CONFIG_TYPE => Ok(Arc::new(gzip::compressor::GzipFactory::from_any(any, &p)?)),
        brotli::compressor::CONFIG_TYPE => Ok(Arc::new(brotli::compressor::BrotliFactory::from_any(any, &p)?)),
        zstd::compressor::CONFIG_TYPE => Ok(Arc::new(zstd::compressor::ZstdFactory::from_any(any, &p)?)),
        other => Err(p.field_error("@type", format!("unsupported compressor library '{other}'"))),
    }
}

/// Builds the decompression library `library` names; `path` points at it. Its
/// stats go under `stats_prefix` (the filter's `http.<prefix>.decompressor.<name>.`).
pub fn create_decompressor_factory(
    library: &TypedExtensionConfig,
    path: &FieldPath,
    store: &Store,
    stats_prefix: &str,
) -> Result<Arc<dyn DecompressorFactory>, ConfigError> {
    let Some(any) = &library.typed_config else { return Err(path.field_error("typed_config", "value is required")) };
    let mut p = path.clone();
    p.push_field("typed_config");
    match descriptor::type_name(&any.type_url) {
        gzip::decompressor::CONFIG_TYPE => {
            Ok(Arc::new(gzip::decompressor::GzipDecompressorFactory::from_any(any, &p, store, stats_prefix)?))
        }
        brotli::decompressor::CONFIG_TYPE => {
            Ok(Arc::new(brotli::decompressor::BrotliDecompressorFactory::from_any(any, &p, store, stats_prefix)?))
        }
        zstd::decompressor::CONFIG_TYPE => {
            Ok(Arc::new(zstd::decompressor::ZstdDecompressorFactory::from_any(any, &p, store, stats_prefix)?))
        }
        other => Err(p.field_error("@type", format!("unsupported decompressor library '{other}'"))),
    }
}

/// Fuzz target (`crate::fuzz`): a body in any coding, however broken, goes
/// through a decompressor without a panic, and no piece inflates past the
/// library's ratio (100, the default of gzip's `max_inflate_ratio`) by more
/// than two output chunks. The first byte picks the library (gzip, brotli,
/// zstd), the second the piece size, the rest is the body; an empty piece ends
/// it, as Envoy's HTTP/1 codec ends a body.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz(data: &[u8]) {
    use envoy_types::pb::envoy::extensions::compression as pb;
    use prost::Message;

    let [kind, piece, body @ ..] = data else { return };
    let (type_name, value) = match kind % 3 {
        0 => (gzip::decompressor::CONFIG_TYPE, pb::gzip::decompressor::v3::Gzip::default().encode_to_vec()),
        1 => (brotli::decompressor::CONFIG_TYPE, pb::brotli::decompressor::v3::Brotli::default().encode_to_vec()),
        _ => (zstd::decompressor::CONFIG_TYPE, pb::zstd::decompressor::v3::Zstd::default().encode_to_vec()),
    };
    let library = TypedExtensionConfig {
        name: "fuzz".into(),
        typed_config: Some(envoy_types::pb::google::protobuf::Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value,
        }),
    };
    let store = Store::new();
    let Ok(factory) = create_decompressor_factory(&library, &FieldPath::starting_at("fuzz"), &store, "fuzz.") else {
        panic!("the default config of {type_name} is valid");
    };
    let mut d = factory.create();
    // zstd's output chunk (`ZSTD_DStreamOutSize()`, 128 KiB) is the largest default.
    let slack = 2 * (128 << 10) + 2;
    for p in body.chunks(usize::from(*piece) + 1).chain([&[][..]]) {
        let out = d.decompress(p);
        assert!(out.len() <= 100 * p.len() + slack, "{} bytes out of {} in", out.len(), p.len());
    }
}
