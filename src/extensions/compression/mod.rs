//! Compression libraries (Envoy's `extensions/compression/`): what a
//! `compressor_library` names. The compressor filter asks one for a fresh
//! `Compressor` per response it compresses; each library says which
//! `content-encoding` it produces and the stats prefix Envoy gives it.
//!
//! - `gzip` — `envoy.compression.gzip.compressor` (zlib-rs through flate2)

pub mod gzip;

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;

use crate::config::{descriptor, ConfigError, FieldPath};

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

/// The config types of the libraries Courier ships.
pub const CONFIG_TYPES: &[&str] = &[gzip::CONFIG_TYPE];

/// Builds the library `library` names; `path` points at it.
pub fn create_compressor_factory(
    library: &TypedExtensionConfig,
    path: &FieldPath,
) -> Result<Arc<dyn CompressorFactory>, ConfigError> {
    let Some(any) = &library.typed_config else { return Err(path.field_error("typed_config", "value is required")) };
    let mut p = path.clone();
    p.push_field("typed_config");
    match descriptor::type_name(&any.type_url) {
        gzip::CONFIG_TYPE => Ok(Arc::new(gzip::GzipFactory::from_any(any, &p)?)),
        other => Err(p.field_error("@type", format!("unsupported compressor library '{other}'"))),
    }
}
